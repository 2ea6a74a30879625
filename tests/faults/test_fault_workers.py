"""``make faults`` only (WS_FAULTS_FULL=1): the worker-count comparisons of tests/test_data_workers.py at
full width — 0, 1, 2 and 4 data workers give bit-identical final weights for digits, ``ocr_rec`` with
augmentation and a ppdet detector (PicoDet, with EMA and ``BatchRandomResize``), and a detector stopped
mid-run with workers resumes bit-identical."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import app  # noqa: F401  (zlib before paddle)
from tests.train_helpers import assert_same_tensors, final_model, run_inprocess, tiny_overrides

pytestmark = pytest.mark.skipif(os.environ.get("WS_FAULTS_FULL") != "1", reason="make faults only")
COUNTS = [0, 1, 2, 4]


def test_digits_with_four_workers(tmp_path: Path) -> None:
    runs = {w: tiny_overrides(tmp_path / f"w{w}", **{"train.data_workers": w}) for w in COUNTS}
    for over in runs.values():
        assert run_inprocess(over)[0] == 0
    for w in COUNTS[1:]:
        assert_same_tensors(final_model(runs[0]), final_model(runs[w]))


def test_ocr_with_four_workers(tmp_path: Path) -> None:
    from tests.test_ocr_train import CONFIG, ocr_overrides

    augment = {"task.options.augment.rotate_prob": 0.5, "task.options.augment.noise_prob": 0.5,
               "task.options.augment.blur_prob": 0.3, "task.options.augment.hsv_prob": 0.3,
               "task.options.synthetic.n_train": 64, "task.options.model.width": 8, "schedule.total_steps": 10,
               "train.batch_size": 8}  # fmt: skip
    runs = {w: ocr_overrides(tmp_path / f"w{w}", tmp_path / "data", **augment, **{"train.data_workers": w})
            for w in COUNTS}  # fmt: skip
    for over in runs.values():
        assert run_inprocess(over, config=CONFIG)[0] == 0
    for w in COUNTS[1:]:
        assert_same_tensors(final_model(runs[0], CONFIG), final_model(runs[w], CONFIG))


def test_detection_with_workers_and_a_resume(tmp_path: Path) -> None:
    from app.tasks.det.synth import write_shapes
    from tests.test_det_train import latest, overrides

    shapes = write_shapes(tmp_path / "shapes", n_train=12, n_eval=4, size=96, seed=3)
    config = "configs/det_picodet_s.yaml"
    runs = {w: overrides(tmp_path / f"w{w}", shapes, **{"train.data_workers": w, "schedule.total_steps": 8})
            for w in COUNTS}  # fmt: skip
    for over in runs.values():
        assert run_inprocess(over, config=config)[0] == 0
    cut = overrides(tmp_path / "cut", shapes, **{"train.data_workers": 2, "schedule.total_steps": 8})
    assert run_inprocess(cut, stop_at=3, config=config)[0] == 143
    again = overrides(tmp_path / "cut", shapes, **{"train.data_workers": 4, "schedule.total_steps": 8})
    assert run_inprocess(again, config=config)[0] == 0
    base = latest(tmp_path / "w0", config, runs[0])
    for run, over in [*((tmp_path / f"w{w}", runs[w]) for w in COUNTS[1:]), (tmp_path / "cut", cut)]:
        other = latest(run, config, over)
        for group in ("model", "optimizer", "ema", "det_state"):
            assert_same_tensors(base.tensors[group], other.tensors[group])
