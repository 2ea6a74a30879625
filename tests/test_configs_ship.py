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
