"""Typed configuration of the learning-rate schedule (the ``schedule:`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.errors import ConfigError

__all__ = ["WarmupConfig", "DecayConfig", "StageConfig", "ScalingConfig", "ScheduleConfig"]

WarmupKind = Literal["linear", "exponential", "none", "custom"]
DecayKind = Literal[
    "cosine",
    "linear",
    "polynomial",
    "piecewise",
    "multistep",
    "exponential",
    "inverse_sqrt",
    "constant",
    "warmup_stable_decay",
]


@dataclass
class WarmupConfig:
    """How the LR ramps up from ``start_lr`` to ``base_lr``."""

    kind: WarmupKind = "linear"
    #: Warmup length in optimizer steps, or "auto" (a fraction of total steps; see docs/schedule.md).
    steps: int | Literal["auto"] | None = None
    #: Warmup length in epochs; converted once to steps from the number of batches per epoch.
    epochs: float | None = None
    #: LR at step 0.
    start_lr: float = 0.0
    #: Curve sharpness of the exponential warmup (larger = slower start).
    power: float = 5.0
    #: For kind=custom: "module:attr" naming a function ``f(step, warmup_steps, start_lr, base_lr) -> lr``
    #: or a Paddle ``LRScheduler`` subclass.
    callable: str | None = None


@dataclass
class DecayConfig:
    """How the LR falls after warmup. Fields not used by ``kind`` are ignored."""

    kind: DecayKind = "cosine"
    min_lr: float = 0.0
    end_lr: float = 0.0
    power: float = 1.0
    boundaries: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    #: warmup_stable_decay: fraction of the post-warmup steps spent in the final decay.
    decay_fraction: float = 0.1


@dataclass
class StageConfig:
    """One stage of a multi-stage chain: a decay shape run for ``steps`` steps (or to the end)."""

    decay: DecayConfig = field(default_factory=DecayConfig)
    steps: int | None = None


@dataclass
class ScalingConfig:
    """Opt-in batch-size rules applied when the global batch differs from ``reference_batch``."""

    lr_rule: Literal["none", "linear", "sqrt"] = "none"
    warmup_rule: Literal["none", "log"] = "none"
    reference_batch: int | None = None


@dataclass
class ScheduleConfig:
    base_lr: float = 0.001
    total_steps: int | None = None
    epochs: float | None = None
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    decay: DecayConfig = field(default_factory=DecayConfig)
    #: Optional chain of decay stages after warmup; when set, ``decay`` is not used.
    stages: list[StageConfig] = field(default_factory=list)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)

    def validate(self, path: str) -> None:
        p = f"{path}." if path else ""
        if self.base_lr <= 0:
            raise ConfigError(f"{p}base_lr: must be > 0, got {self.base_lr}")
        if self.total_steps is not None and self.total_steps <= 0:
            raise ConfigError(f"{p}total_steps: must be > 0, got {self.total_steps}")
        if self.total_steps is not None and self.epochs is not None:
            raise ConfigError(f"{p}total_steps and {p}epochs: set one, not both")
