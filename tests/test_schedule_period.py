"""``schedule.decay.period: run`` and ``schedule.warmup.epochs_rounding: nearest_even`` as tables of numbers."""

from __future__ import annotations

import math

import pytest

from app.config.typed import from_data
from app.errors import ConfigError
from app.schedule import ScheduleConfig, build_schedule

BASE, TOTAL, W = 0.01, 30, 6


def table(data: dict, spe: int | None = None) -> list[float]:
    cfg = from_data(ScheduleConfig, data, "schedule")
    return build_schedule(cfg, steps_per_epoch=spe, global_batch=1, optimizer_name="sgd").lr_table()


@pytest.mark.parametrize("kind", ["cosine", "linear", "polynomial"])
def test_run_period_counts_from_warmup_end_over_the_whole_run(kind: str) -> None:
    got = table(
        {
            "base_lr": BASE,
            "total_steps": TOTAL,
            "warmup": {"steps": W},
            "decay": {"kind": kind, "period": "run", "power": 2.0},
        }
    )
    for t in range(W, TOTAL):
        s = (t - W) / TOTAL
        want = {
            "cosine": BASE / 2 * (1 + math.cos(math.pi * s)),
            "linear": BASE * (1 - s),
            "polynomial": BASE * (1 - s) ** 2,
        }[kind]
        assert got[t] == pytest.approx(want, rel=1e-12), t
    assert got[:W] == pytest.approx([BASE * t / W for t in range(W)], rel=1e-12)


def test_after_warmup_period_is_unchanged() -> None:
    got = table({"base_lr": BASE, "total_steps": TOTAL, "warmup": {"steps": W}, "decay": {"kind": "cosine"}})
    assert got[-1] == pytest.approx(BASE / 2 * (1 + math.cos(math.pi * (TOTAL - 1 - W) / (TOTAL - W))))


@pytest.mark.parametrize(
    ("epochs", "rounding", "steps"),
    [(0.5, "up", 4), (0.5, "nearest_even", 4), (1.5, "up", 11), (1.5, "nearest_even", 10), (0.3, "up", 3)],
)
def test_warmup_epochs_rounding(epochs: float, rounding: str, steps: int) -> None:
    data = {"total_steps": 40, "warmup": {"epochs": epochs, "epochs_rounding": rounding}}
    cfg = from_data(ScheduleConfig, data, "schedule")
    built = build_schedule(cfg, steps_per_epoch=7, global_batch=1, optimizer_name="sgd")
    assert built.warmup_steps == steps


def test_run_period_inside_a_stage_is_refused() -> None:
    data = {"total_steps": 40, "stages": [{"decay": {"kind": "cosine", "period": "run"}}]}
    with pytest.raises(ConfigError, match=r"schedule\.stages\[0\]\.decay\.period: only 'after_warmup'"):
        from_data(ScheduleConfig, data, "schedule")
