"""Warm start under a changed label space of the same size (digits): partial skips the class layers and
says why, weights stops with one line (exit 4), the same labels load everything, a source that records
no labels loads with a note, and the run's own checkpoint and export refuse other labels."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import safetensors.numpy

from app.cli import main
from app.errors import CheckpointError
from tests.train_helpers import ROOT, final_model, run_inprocess, tiny_overrides

PRE_CLASSES = "[0,1,2,3,4]"
PERMUTED = "[0,1,2,4,3]"
REASON = (
    "label space differs (classes: checkpoint 5 vs this run 5 labels, 2 differ; same names in another "
    "order; first: index 3 '3' vs '4')"
)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pre")
    ov = tiny_overrides(run_dir, **{"task.options.classes": PRE_CLASSES, "schedule.total_steps": 10})
    assert run_inprocess(ov)[0] == 0
    return run_dir / "checkpoints", final_model(ov)


def _warm(tmp_path, source, classes: str, **extra):
    return tiny_overrides(
        tmp_path,
        **{
            "init.from": str(source),
            "task.options.classes": classes,
            "schedule.total_steps": 10,
            "schedule.warmup.steps": 1,
            **extra,
        },
    )


def _state(session) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in session.net.state_dict().items()}


def test_checkpoint_meta_records_the_label_space(pretrained):
    source, _ = pretrained
    meta = json.loads(sorted(source.glob("step-*/meta.json"))[-1].read_text())
    assert {k: v for k, v in meta["label_space"].items() if k != "sha256"} == {
        "kind": "classes",
        "count": 5,
        "names": ["0", "1", "2", "3", "4"],
    }


def test_partial_skips_the_class_layers_and_says_why(tmp_path, pretrained, caplog):
    source, pre = pretrained
    caplog.set_level(logging.INFO)
    ov = _warm(tmp_path, source, PERMUTED, **{"init.mode": "partial", "init.min_loaded_fraction": 0.1})
    rc, session = run_inprocess(ov, stop_at=0)
    assert rc == 143
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    assert report["label_skipped"] == ["head.weight", "head.bias"]
    assert report["label_reason"] == REASON
    backbone = sorted(k for k in pre if k.startswith("backbone."))
    assert sorted(report["loaded"]) == backbone
    assert report["mismatched"] == [] and report["ignored"] == [] and report["missing"] == []
    state = _state(session)
    assert all(np.array_equal(state[k], pre[k]) for k in backbone)
    assert not np.array_equal(state["head.weight"], pre["head.weight"])  # fresh, not the permuted rows
    assert f"warm start (partial): {REASON}, skipped: head.weight, head.bias" in caplog.text


def test_weights_mode_stops_with_one_line_and_exit_4(tmp_path, pretrained, capsys, monkeypatch):
    source, _ = pretrained
    monkeypatch.chdir(ROOT)
    ov = _warm(tmp_path, source, PERMUTED, **{"init.mode": "weights"})
    rc = main(["train", "-c", "configs/demo.yaml", *[a for o in ov for a in ("--set", o)]])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warmstart:")]
    assert rc == 4
    assert err == [
        f"warmstart: checkpoint: weights load from {source} refused: {REASON} (the class layers' rows "
        "would stand for other labels: use init.mode: partial to train them afresh (head.*), or "
        "init.label_check: false to load them anyway)"
    ]
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize(
    ("classes", "extra"),
    [(PRE_CLASSES, {}), (PERMUTED, {"init.label_check": "false"})],
    ids=["same-labels", "check-off"],
)
def test_same_labels_or_check_off_load_every_tensor(tmp_path, pretrained, caplog, classes, extra):
    source, pre = pretrained
    caplog.set_level(logging.INFO)
    rc, session = run_inprocess(_warm(tmp_path, source, classes, **{"init.mode": "weights", **extra}), 0)
    assert rc == 143
    state = _state(session)
    assert all(np.array_equal(state[k], pre[k]) for k in pre)
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    assert report["label_skipped"] == [] and report["label_reason"] == ""
    assert "label space" not in caplog.text


def test_source_without_a_record_loads_with_a_note(tmp_path, pretrained, caplog):
    _, pre = pretrained
    weights = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({k: v.copy() for k, v in pre.items()}, str(weights))
    caplog.set_level(logging.INFO)
    rc, session = run_inprocess(_warm(tmp_path / "run", weights, PERMUTED, **{"init.mode": "weights"}), 0)
    assert rc == 143
    assert all(np.array_equal(v, pre[k]) for k, v in _state(session).items())
    assert (
        f"label space not checked: {weights} records none (a PaddleOCR .pdparams, a plain weights file or a "
        "checkpoint of an older warmstart); the class layers (head.*) load by name and shape only"
    ) in caplog.text


def test_own_checkpoint_with_other_labels_is_refused(tmp_path, pretrained):
    source, _ = pretrained
    ov = _warm(tmp_path, source, PRE_CLASSES, **{"init.mode": "weights"})
    assert run_inprocess(ov, stop_at=3)[0] == 143
    with pytest.raises(CheckpointError) as err:
        run_inprocess(_warm(tmp_path, source, PERMUTED, **{"init.mode": "weights"}))
    line = err.value.line()
    assert line.startswith(f"resume load from {tmp_path / 'checkpoints'}/step-00000003 refused: {REASON} (")
    assert "this is the run's own checkpoint in checkpoint.uri" in line
    assert run_inprocess(ov)[0] == 0  # the same labels resume as before


def test_export_with_other_labels_is_refused(tmp_path, pretrained, capsys):
    source, _ = pretrained
    ov = tiny_overrides(tmp_path, **{"task.options.classes": PERMUTED})
    args = ["export", "-c", str(ROOT / "configs/demo.yaml"), "--out", str(tmp_path / "out"), "--from"]
    rc = main([*args, str(source), *[a for o in ov for a in ("--set", o)]])
    assert rc == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("warmstart: checkpoint: export of ") and REASON in err
    assert not (tmp_path / "out").exists()


def test_partial_with_the_head_ignored_keeps_it_ignored_and_notes_the_change(tmp_path, pretrained, caplog):
    source, _ = pretrained
    caplog.set_level(logging.INFO)
    extra = {"init.mode": "partial", "init.ignore": "['head.*']"}
    assert run_inprocess(_warm(tmp_path, source, PERMUTED, **extra), stop_at=0)[0] == 143
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    assert report["ignored"] == ["head.weight", "head.bias"] and report["label_skipped"] == []
    assert report["label_reason"] == REASON and report["loaded_fraction"] == 1.0
    assert f"{REASON}; no class layer left to skip (ignored or shape-mismatched)" in caplog.text
