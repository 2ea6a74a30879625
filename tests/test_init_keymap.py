"""init.key_map and init.match: renamed, reported warm starts, with ppdet's own match_state_dict as oracle.

A PaddleClas ImageNet file names the backbone's tensors without the detector's ``backbone.`` prefix. We
build a real PicoDet, save its backbone that way (safetensors and a pickled .pdparams), and check that
``init.match: ppdet`` pairs exactly what ppdet pairs, that the values land, and that exact matching stops
with a message that names the fix.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import app  # noqa: F401  (zlib before paddle)
from app.checkpoint.keymap import KeyMapRule, RenameRule, match_keys
from app.config import load_config
from app.errors import CheckpointError, ConfigError
from app.tasks.det.synth import write_shapes
from tests.test_det_train import overrides
from tests.train_helpers import ROOT, run_inprocess

PICODET = ROOT / "configs/ppdet/picodet_s_lcnet.yml"
CONFIG = "configs/det_picodet_s.yaml"


# -- the rule itself (no Paddle) ---------------------------------------------------------------------------
def test_ppdet_rule_takes_the_longest_dotted_tail_and_reports_the_rest() -> None:
    model = {
        "backbone.conv1.weight": (3, 3),
        "backbone.res5.a.w": (2,),
        "head.fc.weight": (4,),
        "head.b": (1,),
    }
    source = {
        "conv1.weight": (3, 3),
        "weight": (3, 3),
        "backbone.res5.a.w": (2,),
        "fc.weight": (4,),
        "x": (1,),
    }
    got = match_keys(model, source, [], "ppdet")
    assert got.pairs == {
        "backbone.conv1.weight": "conv1.weight",  # longer than "weight"
        "backbone.res5.a.w": "backbone.res5.a.w",
        "head.fc.weight": "fc.weight",
    }
    assert got.unused == ["weight", "x"]
    exact = match_keys(model, source, [KeyMapRule(add_prefix="backbone.")], "exact")
    assert exact.pairs == {"backbone.conv1.weight": "conv1.weight"}


def test_ppdet_rule_refuses_equal_candidates_and_a_tensor_claimed_twice() -> None:
    # "backbone.res5.w" is compared as "res5.w" (ppdet's Faster R-CNN case) but scored by its length: it
    # ties with "bcdefghi.res5.w", where ppdet silently takes the alphabetically first
    with pytest.raises(CheckpointError) as err:
        match_keys(
            {"a.bcdefghi.res5.w": (2,)}, {"backbone.res5.w": (2,), "bcdefghi.res5.w": (2,)}, [], "ppdet"
        )
    assert err.value.line() == (
        "init.match ppdet: model parameter 'a.bcdefghi.res5.w' matches source names ['backbone.res5.w', "
        "'bcdefghi.res5.w'] equally well (resolve it with init.key_map (e.g. a rename of one of them), or "
        "init.ignore the parameter)"
    )
    with pytest.raises(CheckpointError, match=r"source tensor 'conv.w' is the best match of several model "
                       r"parameters \(a.conv.w, b.conv.w\); ppdet refuses this too"):  # fmt: skip
        match_keys({"a.conv.w": (2,), "b.conv.w": (2,)}, {"conv.w": (2,)}, [], "ppdet")
    # ppdet only refuses among shape-matching pairs; an ignored parameter claims nothing
    assert match_keys({"a.conv.w": (2,), "b.conv.w": (3,)}, {"conv.w": (2,)}, [], "ppdet").pairs == {
        "a.conv.w": "conv.w", "b.conv.w": "conv.w"
    }  # fmt: skip
    got = match_keys({"a.conv.w": (2,), "b.conv.w": (2,)}, {"conv.w": (2,)}, [], "ppdet", {"b.conv.w"})
    assert got.pairs == {"a.conv.w": "conv.w", "b.conv.w": "conv.w"} and got.unused == []


def test_ppdet_oracle_agrees_on_ambiguity() -> None:
    from ppdet.utils.checkpoint import match_state_dict

    w = {"conv.w": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="Ambiguity weight conv.w loaded"):
        match_state_dict({"a.conv.w": np.zeros(2), "b.conv.w": np.zeros(2)}, w)


def test_key_map_rules_apply_in_order_and_collisions_name_both() -> None:
    rules = [
        KeyMapRule(strip_prefix="model."),
        KeyMapRule(rename=RenameRule(pattern=r"^blocks\.(\d+)\.", to=r"stages.\1.")),
        KeyMapRule(add_prefix="backbone."),
    ]
    model = {"backbone.stages.0.w": (1,), "backbone.stem.w": (1,)}
    got = match_keys(model, {"model.blocks.0.w": (1,), "stem.w": (1,)}, rules, "exact")
    assert got.pairs == {"backbone.stages.0.w": "model.blocks.0.w", "backbone.stem.w": "stem.w"}
    with pytest.raises(CheckpointError) as err:
        match_keys(model, {"model.stem.w": (1,), "stem.w": (1,)}, rules, "exact")
    assert err.value.line().startswith(
        "init.key_map maps both 'model.stem.w' and 'stem.w' of the source to 'backbone.stem.w'"
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('init.key_map=[{rename: {pattern: "(", to: x}}]',
         "init.key_map[0].rename.pattern: '(' is not a valid regular expression: missing ), unterminated "
         "subpattern at position 0"),
        ('init.key_map=[{rename: {pattern: "a", to: "\\\\1"}}]',
         "init.key_map[0].rename.to: '\\\\1' refers to group '1', which 'a' does not have (0 group(s))"),
        ("init.key_map=[{add_prefix: a., strip_prefix: b.}]",
         "init.key_map[0]: set exactly one of add_prefix, strip_prefix, rename (got add_prefix, strip_prefix)"),
        ("init.match=fuzzy", "init.match: 'fuzzy' is not one of 'exact', 'ppdet'"),
    ],
)  # fmt: skip
def test_bad_rules_are_one_line_naming_the_field(setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/demo.yaml", [setting], env={})
    assert err.value.message == message


def test_resume_mode_refuses_key_map_and_match() -> None:
    over = ["init.from=/tmp/x", "init.mode=resume", "init.match=ppdet", "init.key_map=[{add_prefix: a.}]"]
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/demo.yaml", over, env={})
    assert err.value.message == (
        "init.key_map and init.match=ppdet: not allowed with init.mode=resume (an exact resume reads our "
        "own checkpoint under its own names)"
    )


# -- a real PicoDet and a PaddleClas-style backbone file ----------------------------------------------------
@pytest.fixture(scope="module")
def backbone_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The PicoDet backbone's tensors, renamed as PaddleClas names them and filled with new values."""
    import paddle
    import safetensors.numpy

    from app.tasks.det.workspace import build_architecture, load_ppdet_config

    tmp = tmp_path_factory.mktemp("bb")
    with paddle.utils.unique_name.guard():
        model = build_architecture(load_ppdet_config(PICODET))
    rng = np.random.default_rng(0)
    model_state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    weights = {
        k[len("backbone.") :]: rng.standard_normal(shape).astype(np.float32)
        for k, shape in model_state.items()
        if k.startswith("backbone.")
    }
    safetensors.numpy.save_file({k: v.copy() for k, v in weights.items()}, str(tmp / "LCNet.safetensors"))
    paddle.save({k: paddle.to_tensor(v) for k, v in weights.items()}, str(tmp / "LCNet_pretrained.pdparams"))
    return {"dir": tmp, "weights": weights, "model": model, "shapes": model_state}


def _ppdet_pairs(model, weights: dict[str, np.ndarray]) -> set[tuple[str, str]]:
    """(model key, weight key) as ppdet's own match_state_dict pairs them."""
    from ppdet.utils.checkpoint import match_state_dict

    by_id = {id(v): k for k, v in weights.items()}
    return {(mk, by_id[id(v)]) for mk, v in match_state_dict(model.state_dict(), weights).items()}


def test_ppdet_match_pairs_what_ppdet_pairs(backbone_files: dict) -> None:
    weights, shapes = backbone_files["weights"], backbone_files["shapes"]
    oracle = _ppdet_pairs(backbone_files["model"], weights)
    ours = match_keys(shapes, {k: v.shape for k, v in weights.items()}, [], "ppdet").pairs
    assert len(oracle) == len(weights) > 100
    assert set(ours.items()) == oracle


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), n_train=4, n_eval=2, size=64, seed=0)


def det_overrides(run: Path, data: Path, **extra: object) -> list[str]:
    """test_det_train's overrides, shortened to 2 steps."""
    return overrides(run, data, **{"schedule.total_steps": 2, "schedule.warmup.steps": 1, **extra})


def _assert_loaded(session, weights: dict[str, np.ndarray]) -> None:
    state = session.net.state_dict()
    for name, value in weights.items():
        assert np.array_equal(state["backbone." + name].numpy(), value), name


def test_exact_match_on_a_backbone_file_stops_and_names_the_fix(
    tmp_path: Path, backbone_files: dict, shapes_data: Path
) -> None:
    src = backbone_files["dir"] / "LCNet.safetensors"
    over = det_overrides(tmp_path, shapes_data, **{"init.from": src, "init.mode": "partial"})
    with pytest.raises(CheckpointError) as err:
        run_inprocess(over, config=CONFIG)
    line = err.value.line()
    assert line.startswith(f"partial load from {src} matched only 0.0% of the model")
    assert err.value.hint == (
        "the source's names look like the model's without a prefix: try init.match: ppdet or "
        "init.key_map: [{add_prefix: backbone.}]"
    )
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").iterdir())


def test_ppdet_match_warm_starts_and_reports_every_pair(
    tmp_path: Path, backbone_files: dict, shapes_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = backbone_files["weights"]
    src = backbone_files["dir"] / "LCNet.safetensors"
    over = det_overrides(
        tmp_path, shapes_data, **{"init.from": src, "init.mode": "partial", "init.match": "ppdet",
                                  "init.min_loaded_fraction": 0.05}
    )  # fmt: skip
    caplog.set_level(logging.INFO)
    rc, session = run_inprocess(over, stop_at=0, config=CONFIG)
    assert rc == 143
    _assert_loaded(session, weights)
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    assert {(m, s) for s, m in report["mapped"]} == _ppdet_pairs(backbone_files["model"], weights)
    assert sorted(report["loaded"]) == sorted("backbone." + k for k in weights)
    assert report["unexpected"] == [] and report["mismatched"] == []
    assert report["missing"] and all(not n.startswith("backbone.") for n in report["missing"])
    assert f"{len(weights)} loaded under another name (source -> model):" in caplog.text
    assert "  conv1.conv.weight -> backbone.conv1.conv.weight" in caplog.text


def test_min_loaded_fraction_counts_after_the_mapping(
    tmp_path: Path, backbone_files: dict, shapes_data: Path
) -> None:
    src = backbone_files["dir"] / "LCNet.safetensors"
    shapes, weights = backbone_files["shapes"], backbone_files["weights"]
    expected = sum(np.prod(shapes["backbone." + k]) for k in weights) / sum(
        np.prod(s) for s in shapes.values()
    )
    warm = {"init.from": src, "init.mode": "partial", "init.match": "ppdet"}
    with pytest.raises(CheckpointError) as err:
        run_inprocess(
            det_overrides(tmp_path, shapes_data, **warm, **{"init.min_loaded_fraction": 0.99}), config=CONFIG
        )
    assert err.value.line().startswith(
        f"partial load from {src} matched only {expected:.1%} of the model (init.min_loaded_fraction is 99%)"
    )
    assert 0.05 < expected < 0.99


def test_key_map_in_strict_weights_mode_still_demands_every_model_key(
    tmp_path: Path, backbone_files: dict, shapes_data: Path
) -> None:
    src = backbone_files["dir"] / "LCNet.safetensors"
    over = det_overrides(
        tmp_path, shapes_data, **{"init.from": src, "init.mode": "weights", "init.key_map": "[{add_prefix: backbone.}]"}
    )  # fmt: skip
    with pytest.raises(CheckpointError) as err:
        run_inprocess(over, config=CONFIG)
    assert (
        f"weights load from {src} does not match the model: missing from checkpoint: neck."
        in err.value.line()
    )
    over = det_overrides(
        tmp_path / "p", shapes_data, **{"init.from": src, "init.mode": "partial",
                                        "init.key_map": "[{add_prefix: backbone.}]", "init.min_loaded_fraction": 0.05}
    )  # fmt: skip
    rc, session = run_inprocess(over, stop_at=0, config=CONFIG)
    assert rc == 143
    _assert_loaded(session, backbone_files["weights"])


def test_pickled_backbone_needs_the_opt_in_then_loads(
    tmp_path: Path, backbone_files: dict, shapes_data: Path
) -> None:
    src = backbone_files["dir"] / "LCNet_pretrained.pdparams"
    warm = {"init.from": src, "init.mode": "partial", "init.match": "ppdet", "init.min_loaded_fraction": 0.05}
    with pytest.raises(CheckpointError) as err:
        run_inprocess(det_overrides(tmp_path, shapes_data, **warm), config=CONFIG)
    assert err.value.line().startswith(f"{src} is a pickle (found by its content)")
    assert "set init.allow_pickle: true" in err.value.line()
    over = det_overrides(tmp_path / "ok", shapes_data, **warm, **{"init.allow_pickle": "true"})
    rc, session = run_inprocess(over, stop_at=0, config=CONFIG)
    assert rc == 143
    _assert_loaded(session, backbone_files["weights"])


# -- a ppdet config's pretrain_weights ----------------------------------------------------------------------
def _ppdet_with(tmp: Path, extra: str) -> Path:
    path = tmp / "picodet_pre.yml"
    path.write_text(f"_BASE_: ['{PICODET}']\n{extra}")
    return path


def test_pretrain_weights_warm_starts_as_ppdet_would(
    tmp_path: Path, backbone_files: dict, shapes_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = backbone_files["dir"] / "LCNet.safetensors"
    ppdet_yml = _ppdet_with(tmp_path, f"pretrain_weights: {src}\n")
    over = det_overrides(
        tmp_path, shapes_data, **{"task.options.ppdet_config": ppdet_yml, "init.min_loaded_fraction": 0.05}
    )
    caplog.set_level(logging.INFO)
    rc, session = run_inprocess(over, stop_at=0, config=CONFIG)
    assert rc == 143
    assert (session.cfg.init.from_, session.cfg.init.mode, session.cfg.init.match) == (
        str(src),
        "partial",
        "ppdet",
    )
    _assert_loaded(session, backbone_files["weights"])
    assert (
        f"task.options.ppdet_config: pretrain_weights={src} -> init.from (mode partial, match ppdet), "
        "as ppdet loads it" in caplog.text
    )
    assert "pretrain_weights -> init.from (partial, match ppdet)" in caplog.text  # the key report


def test_pretrain_weights_without_suffix_is_the_pdparams_and_stays_behind_the_gate(
    tmp_path: Path, backbone_files: dict
) -> None:
    stem = backbone_files["dir"] / "LCNet_pretrained"  # ppdet appends .pdparams
    ppdet_yml = _ppdet_with(tmp_path, f"pretrain_weights: {stem}\n")
    cfg = load_config(ROOT / CONFIG, [f"task.options.ppdet_config={ppdet_yml}"], env={})
    assert cfg.init.from_ == f"{stem}.pdparams" and cfg.init.allow_pickle is False
    own = ["init.mode=weights", "init.match=exact"]  # the user's own init.* keys are kept
    cfg = load_config(ROOT / CONFIG, [f"task.options.ppdet_config={ppdet_yml}", *own], env={})
    assert (cfg.init.from_, cfg.init.mode, cfg.init.match) == (f"{stem}.pdparams", "weights", "exact")
    off = "task.options.overrides={pretrain_weights: null}"  # as deleting the key in ppdet: a cold start
    assert (
        load_config(ROOT / CONFIG, [f"task.options.ppdet_config={ppdet_yml}", off], env={}).init.from_ is None
    )


def test_init_from_wins_over_pretrain_weights_and_the_log_says_so_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://alice:s3cr3t@models.example.com/LCNet_x0_75_pretrained.pdparams?token=abc123"
    ppdet_yml = _ppdet_with(tmp_path, f"pretrain_weights: '{url}'\n")
    caplog.set_level(logging.INFO)
    ours = tmp_path / "mine"
    cfg = load_config(ROOT / CONFIG, [f"task.options.ppdet_config={ppdet_yml}", f"init.from={ours}"], env={})
    assert (cfg.init.from_, cfg.init.mode, cfg.init.match) == (str(ours), "weights", "exact")
    lines = [r.getMessage() for r in caplog.records if "wins over" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(
        f"init.from={ours} wins over the ppdet config's pretrain_weights=https://"
    )
    assert "models.example.com/LCNet_x0_75_pretrained.pdparams" in lines[0]
    assert "s3cr3t" not in caplog.text and "abc123" not in caplog.text


# -- our own checkpoints are always read under their own names ----------------------------------------------
def test_resume_and_export_read_own_checkpoints_whatever_key_map_says(tmp_path: Path, capsys) -> None:
    """init.key_map only applies to init.from: the run's own checkpoint (resume) and `warmstart export`
    read our names as they are (an add_prefix would make them backbone.backbone.*)."""
    import safetensors.numpy

    from app.cli import main
    from tests.train_helpers import final_model, tiny_overrides

    pre_ov = tiny_overrides(tmp_path / "pre", **{"schedule.total_steps": 4, "schedule.warmup.steps": 1})
    assert run_inprocess(pre_ov)[0] == 0
    pre = final_model(pre_ov)
    backbone = {k[len("backbone.") :]: v.copy() for k, v in pre.items() if k.startswith("backbone.")}
    safetensors.numpy.save_file(backbone, str(tmp_path / "bb.safetensors"))
    ov = tiny_overrides(tmp_path / "ft", **{
        "init.from": tmp_path / "bb.safetensors", "init.mode": "partial", "init.min_loaded_fraction": 0.1,
        "init.key_map": "[{add_prefix: backbone.}]", "schedule.total_steps": 4, "schedule.warmup.steps": 1,
        "checkpoint.every_steps": 2,
    })  # fmt: skip
    assert run_inprocess(ov, stop_at=2)[0] == 143
    report = json.loads((tmp_path / "ft/warmstart_report.json").read_text())
    assert sorted(report["mapped"]) == sorted([k, "backbone." + k] for k in backbone)
    rc, session = run_inprocess(ov)
    assert rc == 0 and session.step == 4
    events = [json.loads(x) for x in (tmp_path / "ft/log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["kind"] == "event" and e["event"] in ("warm_start", "resume")] == [
        "warm_start", "resume"
    ]  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "exported"
    args = ["export", "--config", str(ROOT / "configs/demo.yaml"), "--out", str(out)]
    assert main(args + [a for o in ov for a in ("--set", o)]) == 0
    assert (out / "inference.pdiparams").is_file()


def test_pretrain_weights_url_is_downloaded_once_matched_as_ppdet_and_pinned_in_lineage(
    tmp_path: Path, backbone_files: dict, shapes_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream form: pretrain_weights is an https URL of a PaddleClas-named backbone file. It goes
    through init.from's download (cache, sha256 in the session's lineage record) and ppdet matching."""
    import hashlib

    from tests.http_helpers import serve

    data = (backbone_files["dir"] / "LCNet.safetensors").read_bytes()
    monkeypatch.setenv("WARMSTART_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server_gen = serve()
    server = next(server_gen)
    try:
        server.files["/weights/LCNet_x1_0_pretrained.pdparams"] = data  # safetensors content: no opt-in
        url = server.url("/weights/LCNet_x1_0_pretrained.pdparams")
        ppdet_yml = _ppdet_with(tmp_path, f"pretrain_weights: {url}\n")
        over = det_overrides(
            tmp_path,
            shapes_data,
            **{"task.options.ppdet_config": ppdet_yml, "init.min_loaded_fraction": 0.05},
        )
        rc, session = run_inprocess(over, stop_at=0, config=CONFIG)
        assert rc == 143
        assert (session.cfg.init.from_, session.cfg.init.match) == (url, "ppdet")
        _assert_loaded(session, backbone_files["weights"])
        assert session.init_source == {
            "from": url, "mode": "partial", "sha256": hashlib.sha256(data).hexdigest()
        }  # fmt: skip
        assert len(server.gets("/weights/LCNet_x1_0_pretrained.pdparams")) == 1
    finally:
        server_gen.close()
