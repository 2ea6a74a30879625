"""Every shipped ``configs/*.yaml`` loads, validates and builds its schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.config import load_config
from app.schedule import build_schedule

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_builds_its_schedule(path: Path) -> None:
    cfg = load_config(path, env={})
    uses_epochs = cfg.schedule.epochs is not None or cfg.schedule.warmup.epochs is not None
    built = build_schedule(
        cfg.schedule,
        steps_per_epoch=10 if uses_epochs or any(s.epochs for s in cfg.schedule.stages) else None,
        global_batch=cfg.train.batch_size * cfg.train.grad_accum_steps,
        optimizer_name=cfg.optim.name,
    )
    assert built.total_steps > built.warmup_steps >= 0
    table = built.lr_table()
    assert len(table) == built.total_steps
    assert all(math.isfinite(v) and v >= 0 for v in table)
    assert max(table) > 0


def test_the_schedule_configs_are_shipped() -> None:
    names = {p.name for p in CONFIGS}
    assert {"schedule_linear_cosine.yaml", "schedule_exp_poly_plateau.yaml", "schedule_wsd.yaml"} <= names


def test_the_ppocrv4_config_is_a_paddleocr_users_config() -> None:
    """configs/ocr_rec_ppocrv4.yaml: PaddleOCR's own blocks, translated onto PP-OCRv4 with its data pipeline."""
    from app.config.typed import from_data
    from app.tasks.ocr.options import OcrRecOptions

    path = CONFIGS[0].parent / "ocr_rec_ppocrv4.yaml"
    raw = __import__("yaml").safe_load(path.read_text())
    assert {"Global", "Optimizer", "Architecture", "Loss", "PostProcess", "Metric", "Train", "Eval"} <= set(
        raw
    )
    cfg = load_config(path, env={})
    opts = from_data(OcrRecOptions, cfg.task.options, "task.options")
    assert opts.model.algorithm == "svtr_lcnet" and opts.builtin_dict == "en_dict.txt" and opts.use_space_char
    assert opts.multiscale is not None and opts.multiscale.scales == [[320, 32], [320, 48], [320, 64]]
    assert opts.rec_aug is not None and opts.rec_con_aug is not None and opts.image_shape == [3, 48, 320]
    assert cfg.schedule.decay.period == "run" and cfg.schedule.warmup.epochs == 5.0
