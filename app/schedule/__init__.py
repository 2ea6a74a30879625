"""Learning-rate schedules: warmup + decay (or a chain of stages) as resumable Paddle ``LRScheduler`` s.

``build_schedule(cfg.schedule, ...)`` is the entry point; docs/schedule.md documents every formula.
"""

from app.schedule.build import BuiltSchedule, PhaseSpan, build_schedule
from app.schedule.config import DecayConfig, ScalingConfig, ScheduleConfig, StageConfig, WarmupConfig
from app.schedule.factor import FactorSchedule, factor_at
from app.schedule.lint import lint_schedule
from app.schedule.phased import Phase, PhasedSchedule, plain_state

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
