"""Warm-start modes: weights, partial (report, min fraction), strict mismatch errors, LR lint, freeze."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from app.errors import CheckpointError, ConfigError
from tests.train_helpers import final_model, run_inprocess, tiny_overrides


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 5-class digits model trained from scratch: the 'pretrained weights' of these tests."""
    run_dir = tmp_path_factory.mktemp("pre")
    ov = tiny_overrides(run_dir, **{"task.options.classes": "[0,1,2,3,4]", "schedule.total_steps": 20})
    assert run_inprocess(ov)[0] == 0
    return run_dir / "checkpoints", final_model(ov)


def _ten_class(tmp_path, source, **extra):
    return tiny_overrides(
        tmp_path, **{"init.from": str(source), "schedule.total_steps": 6, "schedule.warmup.steps": 2, **extra}
    )


def test_partial_loads_backbone_and_reports_new_head(tmp_path, pretrained, caplog):
    source, pre = pretrained
    ov = _ten_class(tmp_path, source, **{"init.mode": "partial", "init.ignore": "['head.*']"})
    caplog.set_level(logging.INFO)
    rc, session = run_inprocess(ov, stop_at=0)
    assert rc == 143  # stopped before any step: the model holds exactly what the warm start put in it
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    backbone = sorted(k for k in pre if k.startswith("backbone."))
    assert sorted(report["loaded"]) == backbone
    assert sorted(report["ignored"]) == ["head.bias", "head.weight"]
    assert report["loaded_fraction"] == 1.0
    assert report["missing"] == [] and report["mismatched"] == [] and report["unexpected"] == []
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    for name in backbone:
        assert np.array_equal(state[name], pre[name]), name
    assert state["head.weight"].shape == (pre["head.weight"].shape[0], 10)
    assert (
        "skipped (ignore): head.weight, head.bias" in caplog.text
        or "skipped (ignore): head.bias, head.weight" in caplog.text
    )
    events = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["kind"] == "event"][:1] == ["warm_start"]


def test_partial_without_ignore_reports_shape_mismatch(tmp_path, pretrained):
    source, pre = pretrained
    ov = _ten_class(tmp_path, source, **{"init.mode": "partial", "init.min_loaded_fraction": 0.1})
    assert run_inprocess(ov)[0] == 0
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    mism = {m[0]: (m[1], m[2]) for m in report["mismatched"]}
    assert mism == {"head.weight": ([128, 5], [128, 10]), "head.bias": ([5], [10])}


def test_partial_below_min_fraction_fails_naming_numbers(tmp_path, pretrained):
    source, _ = pretrained
    ov = _ten_class(
        tmp_path,
        source,
        **{"init.mode": "partial", "init.ignore": "['backbone.*']", "init.min_loaded_fraction": 0.9},
    )
    with pytest.raises(CheckpointError) as err:
        run_inprocess(ov)
    assert err.value.line() == (
        f"partial load from {source} matched only 0.0% of the model (init.min_loaded_fraction is 90%); "
        "shape mismatch: head.weight [128, 5] vs model [128, 10], head.bias [5] vs model [10] "
        "(is init.from the right checkpoint for this architecture?)"
    )


@pytest.mark.parametrize("mode", ["weights", "resume"])
def test_strict_modes_refuse_a_changed_head(tmp_path, pretrained, mode):
    source, _ = pretrained
    with pytest.raises(CheckpointError) as err:
        run_inprocess(_ten_class(tmp_path, source, **{"init.mode": mode}))
    msg = err.value.line()
    assert f"{mode} load from {source}" in msg
    assert "shape mismatch: head.weight [128, 5] vs model [128, 10]" in msg
    assert "init.mode=partial" in msg
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())


def test_weights_mode_loads_model_but_fresh_optimizer_and_schedule(tmp_path, pretrained):
    source, pre = pretrained
    ov = tiny_overrides(tmp_path, **{"init.from": str(source), "init.mode": "weights",
                                     "task.options.classes": "[0,1,2,3,4]"})  # fmt: skip
    rc, session = run_inprocess(ov, stop_at=0)
    assert rc == 143
    assert session.step == 0 and session.lr.last_epoch == 0
    assert session.optimizer._accumulators == {} or all(
        not v for v in session.optimizer._accumulators.values()
    )
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert all(np.array_equal(state[k], pre[k]) for k in pre)


def test_own_checkpoint_wins_over_init_from(tmp_path, pretrained):
    source, _ = pretrained
    ov = _ten_class(tmp_path, source, **{"init.mode": "partial", "init.ignore": "['head.*']"})
    assert run_inprocess(ov, stop_at=3)[0] == 143
    rc, session = run_inprocess(ov)
    assert rc == 0
    events = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events if e["kind"] == "event" and e["event"] in ("warm_start", "resume")]
    assert kinds == ["warm_start", "resume"]


def test_warm_start_lr_lint(tmp_path, pretrained, caplog):
    source, _ = pretrained
    caplog.set_level(logging.WARNING)
    ov = _ten_class(tmp_path, source, **{"init.mode": "partial", "init.ignore": "['head.*']"})
    run_inprocess(ov, stop_at=0)
    assert "warm start with schedule.base_lr=0.003, but the source run used 0.003" in caplog.text
    caplog.clear()
    ov2 = _ten_class(tmp_path / "b", source, **{"init.mode": "partial", "init.ignore": "['head.*']",
                                                 "schedule.base_lr": 0.0003})  # fmt: skip
    run_inprocess(ov2, stop_at=0)
    assert "warm start with" not in caplog.text


def test_freeze_then_unfreeze(tmp_path, pretrained):
    source, pre = pretrained
    ov = _ten_class(tmp_path, source, **{
        "init.mode": "partial", "init.ignore": "['head.*']", "schedule.total_steps": 8,
        "freeze": "[{patterns: ['backbone.*'], until_step: 4}]",
    })  # fmt: skip
    rc, session = run_inprocess(ov, stop_at=4)
    assert rc == 143
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    backbone = [k for k in pre if k.startswith("backbone.")]
    assert all(np.array_equal(state[k], pre[k]) for k in backbone), "backbone moved while frozen"
    assert not np.array_equal(state["head.bias"], np.zeros(10, "float32"))
    rc, session = run_inprocess(ov)
    assert rc == 0
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert not all(np.array_equal(state[k], pre[k]) for k in backbone), "backbone never unfroze"


def test_freeze_pattern_that_matches_nothing_is_a_config_error(tmp_path):
    ov = tiny_overrides(tmp_path, freeze="[{patterns: ['encoder.*'], until_step: 4}]")
    with pytest.raises(ConfigError, match=r"freeze\[0\]\.patterns: 'encoder\.\*' matches no parameter"):
        run_inprocess(ov)


def test_unfreeze_with_lr_factor_and_rewarmup_follows_the_table(tmp_path):
    """Constant base LR, unfreeze at step 4 with factor 0.5 and a 2-step re-warmup: LR per update."""
    ov = tiny_overrides(tmp_path, **{
        "schedule.total_steps": 8, "schedule.warmup.kind": "none", "schedule.decay.kind": "constant",
        "schedule.base_lr": 0.002, "freeze": "[{patterns: ['backbone.*'], until_step: 4, lr_factor: 0.5, rewarmup_steps: 2}]",
    })  # fmt: skip
    assert run_inprocess(ov, stop_at=5)[0] == 143  # the resume lands inside the re-warmup
    assert run_inprocess(ov)[0] == 0
    lrs = {}
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "train":
            lrs[rec["step"]] = rec["lr"]
    # update t (logged at step t+1): factor 1 before 4, then 0.5 * k/2 for k = 0, 1, then 0.5
    assert lrs == pytest.approx(
        {1: 0.002, 2: 0.002, 3: 0.002, 4: 0.002, 5: 0.0, 6: 0.0005, 7: 0.001, 8: 0.001}
    )
