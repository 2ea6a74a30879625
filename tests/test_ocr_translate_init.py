"""PaddleOCR's ``Global.pretrained_model`` / ``Global.checkpoints`` and ``Train.loader.num_workers`` in an
ocr_rec config: the mapping onto ``init`` / ``train.data_workers`` (PaddleOCR 2.8's ``load_model`` /
``load_pretrained_params`` semantics), our own keys winning with a warning, one-line errors, and a real
warm start from a PaddleOCR-format pickle named the way PaddleOCR names it (no ``.pdparams`` suffix)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.config import load_config
from app.errors import ConfigError
from app.tasks.ocr.translate import translate
from app.train.preempt import StopRequest
from app.train.start import prepare
from tests.test_ocr_train import CONFIG, ocr_overrides
from tests.train_helpers import ROOT, save_pdparams

TASK = {"kind": "ocr_rec", "options": {"data_dir": "data/ocr", "builtin_dict": "en_dict.txt"}}
INIT_LOG = "app.tasks.ocr.translate_init"


def _init(raw: dict) -> dict | None:
    return translate({"task": TASK, **raw}).get("init")


# (Global, the init section it gives): PaddleOCR reads <path>.pdparams, suffix given or not.
INIT_TABLE = [
    ({"pretrained_model": "pre/best_accuracy"}, {"from": "pre/best_accuracy.pdparams", "mode": "partial"}),
    ({"pretrained_model": "pre/best_accuracy.pdparams"}, {"from": "pre/best_accuracy.pdparams", "mode": "partial"}),
    ({"pretrained_model": "/abs/m/en_rec "}, {"from": "/abs/m/en_rec.pdparams", "mode": "partial"}),
    ({"pretrained_model": "https://h.example/m.pdparams"}, {"from": "https://h.example/m.pdparams", "mode": "partial"}),
    ({"checkpoints": "output/rec/latest"}, {"from": "output/rec/latest.pdparams", "mode": "weights"}),
    ({"checkpoints": "output/rec/latest", "pretrained_model": None}, {"from": "output/rec/latest.pdparams", "mode": "weights"}),
    ({"pretrained_model": "", "checkpoints": "c.pdparams"}, {"from": "c.pdparams", "mode": "weights"}),
    ({"pretrained_model": None, "checkpoints": None}, None),
    ({"pretrained_model": "", "checkpoints": ""}, None),
    ({"pretrained_model": False}, None),
]  # fmt: skip


@pytest.mark.parametrize(("section", "init"), INIT_TABLE, ids=[str(s) for s, _ in INIT_TABLE])
def test_global_weights_keys_map_to_init(section: dict, init: dict | None) -> None:
    assert _init({"Global": section}) == init


def test_empty_keys_are_not_reported_as_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        translate({"task": TASK, "Global": {"pretrained_model": None, "checkpoints": "", "use_gpu": True}})
    assert [r.getMessage() for r in caplog.records] == [
        "Global keys with no meaning here are ignored: use_gpu"
    ]


def test_checkpoints_win_over_pretrained_model_and_say_what_is_not_carried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=INIT_LOG):
        init = _init({"Global": {"pretrained_model": "pre/best", "checkpoints": "out/latest"}})
    assert init == {"from": "out/latest.pdparams", "mode": "weights"}
    assert [r.getMessage() for r in caplog.records] == [
        "Global.pretrained_model=pre/best.pdparams is not loaded: Global.checkpoints is set and wins, as in "
        "PaddleOCR",
        "Global.checkpoints: the weights out/latest.pdparams start this run (init.mode weights); PaddleOCR's "
        "optimizer state (.pdopt) and epoch (.states) are not read, so the optimizer and the schedule start "
        "at step 0 (lower Global.epoch_num to the epochs left); later restarts resume from this run's own "
        "checkpoints",
    ]


@pytest.mark.parametrize(
    ("ours", "expected", "warning"),
    [
        ({"from": "mine.safetensors"}, {"from": "mine.safetensors"},
         "Global.pretrained_model ignored: init.from is set in our own section and wins"),
        ({"mode": "weights"}, {"mode": "weights", "from": "pre/best.pdparams"},
         "Global.pretrained_model (init.mode partial) ignored: init.mode is set in our own section and wins"),
        ({"allow_pickle": True}, {"allow_pickle": True, "from": "pre/best.pdparams", "mode": "partial"}, None),
    ],
)  # fmt: skip
def test_our_init_keys_win_with_a_warning(
    ours: dict, expected: dict, warning: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert _init({"init": ours, "Global": {"pretrained_model": "pre/best"}}) == expected
    assert [r.getMessage() for r in caplog.records] == ([warning] if warning else [])


def test_set_override_of_init_from_beats_global(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "task: {kind: ocr_rec, options: {data_dir: d, builtin_dict: en_dict.txt}}\n"
        "schedule: {total_steps: 5}\nGlobal: {pretrained_model: pre/best_accuracy}\n"
    )
    assert (load_config(path, env={}).init.from_, load_config(path, env={}).init.mode) == (
        "pre/best_accuracy.pdparams",
        "partial",
    )
    cfg = load_config(path, ["init.from=other.safetensors"], env={"WARMSTART_INIT_MODE": "weights"})
    assert (cfg.init.from_, cfg.init.mode) == ("other.safetensors", "weights")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"Global": {"pretrained_model": 3}}, "Global.pretrained_model: expected the path (or http(s) URL) of a "
         ".pdparams file, got 3 (give the file with or without .pdparams, or leave it empty for no weights)"),
        ({"Global": {"checkpoints": ["a", "b"]}}, "Global.checkpoints: expected the path (or http(s) URL) of a "
         ".pdparams file, got ['a', 'b'] (give the file with or without .pdparams, or leave it empty for no "
         "weights)"),
        ({"Train": {"dataset": {"name": "SimpleDataSet"}, "loader": {"num_workers": -1}}},
         "Train.loader.num_workers: expected a whole number >= 0 (0 = batches made in the trainer), got -1"),
        ({"Train": {"dataset": {"name": "SimpleDataSet"}, "loader": {"num_workers": "4"}}},
         "Train.loader.num_workers: expected a whole number >= 0 (0 = batches made in the trainer), got '4'"),
        ({"Train": {"dataset": {"name": "SimpleDataSet"}, "loader": {"num_workers": True}}},
         "Train.loader.num_workers: expected a whole number >= 0 (0 = batches made in the trainer), got True"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        translate({"task": TASK, **raw})
    assert info.value.line() == message


# --- Train.loader.num_workers -> train.data_workers ------------------------------------------------


def _loader(**loader: object) -> dict:
    return {"Train": {"dataset": {"name": "SimpleDataSet"}, "loader": {"batch_size_per_card": 8, **loader}}}


@pytest.mark.parametrize(("workers", "expected"), [(4, 4), (0, 0), (None, None)])
def test_train_num_workers_sets_data_workers(
    workers: int | None, expected: int | None, tmp_path: Path
) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    raw = {"task": TASK, "schedule": {"total_steps": 5}, **_loader(num_workers=workers, shuffle=True)}
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path, env={})
    assert (cfg.train.data_workers, cfg.train.batch_size) == (expected, 8)


def test_our_data_workers_win_and_eval_workers_stay_ignored(caplog: pytest.LogCaptureFixture) -> None:
    raw = {
        **_loader(num_workers=8),
        "Eval": {"dataset": {"name": "SimpleDataSet"}, "loader": {"num_workers": 4}},
    }
    with caplog.at_level(logging.WARNING):
        out = translate({"task": TASK, "train": {"data_workers": 1}, **raw})
    assert out["train"]["data_workers"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "Train.loader.num_workers ignored: train.data_workers is set in our own section and wins" in messages
    )
    assert "Eval.loader keys with their own meaning here are ignored: num_workers" in messages
    assert not any(m.startswith("Train.loader keys") for m in messages)


# --- a real warm start from Global.pretrained_model ---------------------------------------------------


@pytest.fixture(scope="module")
def pdparams(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A PaddleOCR-format pickle (paddle.save of a state dict) of the small recipe's model, and the same
    with a CTC classifier of another dictionary size (what PaddleOCR's pretrained file is to a new set)."""
    root = tmp_path_factory.mktemp("ppocr_init")
    data = root / "data"
    session = prepare(load_config(ROOT / CONFIG, _small(root / "cold", data), env={}), StopRequest())
    session.mgr.close()
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    # changed by a function of the value (not per name: Paddle's LSTM lists its weights under two names)
    source = {k: (v * 1.5 + 0.25).astype(v.dtype) for k, v in state.items()}
    other = dict(source)
    for name in ("head.fc.weight", "head.fc.bias"):
        shape = list(source[name].shape)
        shape[-1] += 5  # 5 more classes
        other[name] = np.zeros(shape, dtype=source[name].dtype)
    same, new = root / "same" / "best_accuracy.pdparams", root / "new" / "best_accuracy.pdparams"
    for path, tensors in ((same, source), (new, other)):
        save_pdparams(tensors, path)
    return {"root": root, "data": data, "source": source, "same": same, "new": new}


def _small(run_dir: Path, data: Path, **extra: object) -> list[str]:
    return ocr_overrides(
        run_dir,
        data,
        **{"task.options.synthetic.n_train": 16, "task.options.synthetic.n_eval": 8, "train.data_workers": 0},
        **extra,
    )


def _warm(run_dir: Path, data: Path, **extra: object) -> dict:
    session = prepare(load_config(ROOT / CONFIG, _small(run_dir, data, **extra), env={}), StopRequest())
    session.mgr.close()
    report = json.loads((run_dir / "warmstart_report.json").read_text())
    return {"report": report, "state": {k: v.numpy() for k, v in session.net.state_dict().items()}}


def test_pretrained_model_without_suffix_loads_partially_skipping_the_new_classes(pdparams: dict) -> None:
    prefix = str(pdparams["new"])[: -len(".pdparams")]  # as PaddleOCR configs write it
    got = _warm(
        pdparams["root"] / "p",
        pdparams["data"],
        **{"Global.pretrained_model": prefix, "init.allow_pickle": "true"},
    )
    report, source = got["report"], pdparams["source"]
    assert sorted(name for name, _, _ in report["mismatched"]) == ["head.fc.bias", "head.fc.weight"]
    assert set(report["loaded"]) == set(source) - {"head.fc.weight", "head.fc.bias"}
    for name in report["loaded"]:
        np.testing.assert_array_equal(got["state"][name], source[name], err_msg=name)


def test_checkpoints_load_strictly_as_weights(pdparams: dict) -> None:
    got = _warm(
        pdparams["root"] / "c",
        pdparams["data"],
        **{"Global.checkpoints": pdparams["same"], "init.allow_pickle": "true"},
    )
    assert sorted(got["report"]["loaded"]) == sorted(pdparams["source"])
    assert got["report"]["mismatched"] == []
    # the changed dictionary is a strict load's mismatch: the run would stop (exit 4)
    rc = main(
        ["train", "--config", str(ROOT / CONFIG)]
        + [f"--set={o}" for o in _small(pdparams["root"] / "c2", pdparams["data"])]
        + [f"--set=Global.checkpoints={pdparams['new']}", "--set=init.allow_pickle=true"]
    )
    assert rc == 4


def test_a_pickle_without_opt_in_stops_with_one_line_saying_what_to_set(
    pdparams: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = str(pdparams["new"])[: -len(".pdparams")]
    argv = ["train", "--config", str(ROOT / CONFIG)]
    argv += [f"--set={o}" for o in _small(pdparams["root"] / "r", pdparams["data"])]
    rc = main([*argv, f"--set=Global.pretrained_model={prefix}"])
    err = capsys.readouterr().err.strip().splitlines()
    digest = hashlib.sha256(pdparams["new"].read_bytes()).hexdigest()
    assert rc == 4 and not any("Traceback" in line for line in err)
    assert err[-1] == (
        f"warmstart: checkpoint: {pdparams['new']} is a pickle (found by its content); loading it can run "
        "arbitrary code, so it is refused (if you trust the file, set init.allow_pickle: true (--set "
        f"init.allow_pickle=true) or pin this exact file with init.sha256: {digest}, or convert it once with "
        "`warmstart ckpt import SRC DEST --allow-pickle` and set init.from: DEST)"
    )
    # the pin named there is the opt-in too
    assert main([*argv, f"--set=Global.pretrained_model={prefix}", f"--set=init.sha256={digest}"]) == 0
