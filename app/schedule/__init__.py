"""Learning-rate schedules: warmup + decay (or a chain of stages) as resumable Paddle ``LRScheduler`` s.

``build_schedule(cfg.schedule, ...)`` is the entry point; docs/schedule.md documents every formula.
"""

import importlib
from typing import Any

# Loaded on first use (PEP 562), so reading a config (``app.schedule.config``) does not import paddle.
_LAZY = {
    "BuiltSchedule": "build", "PhaseSpan": "build", "build_schedule": "build",
    "DecayConfig": "config", "ScalingConfig": "config", "ScheduleConfig": "config",
    "StageConfig": "config", "WarmupConfig": "config",
    "FactorSchedule": "factor", "factor_at": "factor",
    "lint_schedule": "lint",
    "Phase": "phased", "PhasedSchedule": "phased", "plain_state": "phased",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'app.schedule' has no attribute {name!r}")
    return getattr(importlib.import_module(f"app.schedule.{module}"), name)


__all__ = [
    "BuiltSchedule",
    "PhaseSpan",
    "build_schedule",
    "lint_schedule",
    "FactorSchedule",
    "factor_at",
    "Phase",
    "PhasedSchedule",
    "plain_state",
    "ScheduleConfig",
    "WarmupConfig",
    "DecayConfig",
    "StageConfig",
    "ScalingConfig",
]
