"""Typed configuration of the learning-rate schedule (the ``schedule:`` section).

Every step count here counts optimizer updates (not micro-batches). Step counts inside a decay
(``boundaries``, ``milestones``, ``timescale``, a stage's ``steps``) are counted from the start of that
decay phase, i.e. after warmup. Formulas for every kind are in docs/schedule.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.config.typed import limits
from app.errors import ConfigError

__all__ = [
    "WarmupKind",
    "DecayKind",
    "EpochsRounding",
    "DecayPeriod",
    "PERIOD_KINDS",
    "WarmupConfig",
    "DecayConfig",
    "StageConfig",
    "ScalingConfig",
    "ScheduleConfig",
    "warmup_too_long",
]

WarmupKind = Literal["linear", "exponential", "none", "custom"]
EpochsRounding = Literal["up", "nearest_even"]
DecayPeriod = Literal["after_warmup", "run"]
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


#: Decay kinds whose length ``decay.period`` sets (the others have no length).
PERIOD_KINDS = ("cosine", "linear", "polynomial")

#: Upper bound of every learning rate (far above any useful one; keeps LR arithmetic finite).
MAX_LR = 1000.0
#: Upper bound of every length in epochs (converted to steps, which must fit in 64 bits).
MAX_EPOCHS = 1e9


def _prefix(path: str) -> str:
    return f"{path}." if path else ""


def _require_positive(path: str, name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{path}{name}: must be > 0, got {value}")


def _require_non_negative(path: str, name: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise ConfigError(f"{path}{name}: must be >= 0, got {value}")


def _require_increasing(path: str, name: str, values: list[int]) -> None:
    for i, value in enumerate(values):
        if value <= 0 or (i and value <= values[i - 1]):
            raise ConfigError(f"{path}{name}: must be positive and strictly increasing, got {values}")


@dataclass
class WarmupConfig:
    """How the LR ramps up from ``start_lr`` to ``base_lr``. Set at most one of ``steps`` and ``epochs``."""

    #: Warmup curve (formulas in docs/schedule.md); custom = ``callable``.
    kind: WarmupKind = "linear"
    #: Warmup length in optimizer steps, or "auto" (6 % of total steps, clamped; see docs/schedule.md).
    #: Neither ``steps`` nor ``epochs`` set means no warmup.
    steps: int | Literal["auto"] | None = field(default=None, metadata=limits(ge=0))
    #: Warmup length in epochs; converted once to steps (see ``epochs_rounding``) from the optimizer steps
    #: per epoch.
    epochs: float | None = field(default=None, metadata=limits(ge=0, le=MAX_EPOCHS))
    #: How ``epochs`` x steps/epoch becomes whole steps: up (ceil) or nearest_even (Python's ``round``:
    #: nearest, ties to even; PaddleOCR's ``round(warmup_epoch * step_each_epoch)``).
    epochs_rounding: EpochsRounding = "up"
    #: LR at step 0.
    start_lr: float = field(default=0.0, metadata=limits(ge=0, le=MAX_LR))
    #: Warn when ``start_lr`` is 0 with Adam/AdamW. The toolkit translators set false for a warmup that
    #: comes from the toolkit's own config (PaddleNLP ``training_args``, a ppdet ``LearningRate``, a
    #: PaddleOCR ``Optimizer.lr``: their warmups start at 0 by design) unless start_lr is set in ours.
    start_lr_lint: bool = True
    #: Sharpness of the exponential warmup: lr(t) = start + (base - start) * (e^(p t/W) - 1) / (e^p - 1).
    #: Larger = slower start.
    power: float = field(default=5.0, metadata=limits(gt=0, le=100))
    #: For kind=custom: "module:attr" naming a function ``f(step, warmup_steps, start_lr, base_lr) -> lr``
    #: or a Paddle ``LRScheduler`` subclass built as ``cls(learning_rate=base_lr, warmup_steps=W,
    #: start_lr=start_lr)``.
    callable: str | None = None

    def validate(self, path: str) -> None:
        p = _prefix(path)
        if self.steps is not None and self.epochs is not None:
            raise ConfigError(f"{p}steps ({self.steps}) and {p}epochs ({self.epochs}): set one, not both")
        if isinstance(self.steps, int):
            _require_non_negative(p, "steps", self.steps)
        _require_non_negative(p, "epochs", self.epochs)
        _require_non_negative(p, "start_lr", self.start_lr)
        _require_positive(p, "power", self.power)
        if self.kind == "custom":
            if not self.callable:
                raise ConfigError(f"{p}callable: required when {p}kind is 'custom' (e.g. 'mypkg.lr:warmup')")
            module, sep, attr = self.callable.partition(":")
            if not sep or not module or not attr:
                raise ConfigError(f"{p}callable: expected 'module:attr', got {self.callable!r}")


@dataclass
class DecayConfig:
    """How the LR falls after warmup. Fields not used by ``kind`` are ignored."""

    #: Decay curve after warmup (formulas in docs/schedule.md).
    kind: DecayKind = "cosine"
    #: Length of a cosine, linear or polynomial decay: after_warmup = the steps left after warmup (it
    #: reaches its floor at the last step); run = the whole run's steps, still counted from the end of
    #: warmup, so it stops short of its floor (PaddleOCR's and Paddle's ``LinearWarmup`` around
    #: ``CosineAnnealingDecay(T_max=epochs x steps/epoch)``). Not allowed inside ``stages``.
    period: DecayPeriod = "after_warmup"
    #: Floor reached by cosine, linear and warmup_stable_decay; floor of exponential and inverse_sqrt.
    min_lr: float = field(default=0.0, metadata=limits(ge=0, le=MAX_LR))
    #: Final LR of polynomial.
    end_lr: float = field(default=0.0, metadata=limits(ge=0, le=MAX_LR))
    #: Exponent of polynomial.
    power: float = field(default=1.0, metadata=limits(gt=0, le=100))
    #: piecewise: steps (from the decay start) where the LR switches to the next value.
    boundaries: list[int] = field(default_factory=list, metadata=limits(gt=0))
    #: piecewise: absolute LRs, one more than ``boundaries``.
    values: list[float] = field(default_factory=list, metadata=limits(ge=0, le=MAX_LR))
    #: multistep: steps (from the decay start) where the LR is multiplied by ``gamma``.
    milestones: list[int] = field(default_factory=list, metadata=limits(gt=0))
    #: multistep: factor per milestone; exponential: factor per step.
    gamma: float = field(default=0.1, metadata=limits(gt=0, le=1))
    #: warmup_stable_decay: fraction of the decay phase spent in the final linear decay to ``min_lr``.
    decay_fraction: float = field(default=0.1, metadata=limits(ge=0, le=1))
    #: inverse_sqrt: lr = peak * sqrt(tau / (tau + t)); None = the warmup length (or 1 without warmup).
    timescale: int | None = field(default=None, metadata=limits(gt=0))

    def validate(self, path: str) -> None:
        p = _prefix(path)
        for name in ("min_lr", "end_lr"):
            _require_non_negative(p, name, getattr(self, name))
        _require_positive(p, "power", self.power)
        _require_positive(p, "gamma", self.gamma)
        _require_positive(p, "timescale", self.timescale)
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ConfigError(f"{p}decay_fraction: must be within [0, 1], got {self.decay_fraction}")
        if self.kind == "piecewise":
            _require_increasing(p, "boundaries", self.boundaries)
            if len(self.values) != len(self.boundaries) + 1:
                raise ConfigError(
                    f"{p}values: piecewise needs one more value than boundaries "
                    f"({len(self.boundaries)} boundaries, {len(self.values)} values)"
                )
            for value in self.values:
                _require_non_negative(p, "values", value)
        if self.kind == "multistep":
            _require_increasing(p, "milestones", self.milestones)


@dataclass
class StageConfig:
    """One stage of a multi-stage chain: a decay shape run for ``steps`` steps (or, last only, to the end).

    Each stage starts from the LR where the previous one ended (the first from ``base_lr``).
    """

    decay: DecayConfig = field(default_factory=DecayConfig)
    #: Stage length in optimizer steps; None (last stage only) = until ``total_steps``.
    steps: int | None = field(default=None, metadata=limits(gt=0))
    #: Stage length in epochs, converted once to steps (rounded up). Set at most one of steps/epochs.
    epochs: float | None = field(default=None, metadata=limits(gt=0, le=MAX_EPOCHS))

    def validate(self, path: str) -> None:
        p = _prefix(path)
        if self.steps is not None and self.epochs is not None:
            raise ConfigError(f"{p}steps ({self.steps}) and {p}epochs ({self.epochs}): set one, not both")
        _require_positive(p, "steps", self.steps)
        _require_positive(p, "epochs", self.epochs)

    @property
    def open_ended(self) -> bool:
        return self.steps is None and self.epochs is None


@dataclass
class ScalingConfig:
    """Opt-in batch-size rules applied when the global batch differs from ``reference_batch``."""

    #: linear: base_lr * B / B_ref; sqrt: base_lr * sqrt(B / B_ref).
    lr_rule: Literal["none", "linear", "sqrt"] = "none"
    #: log: warmup_steps * (1 + ln(B / B_ref)) when B > B_ref.
    warmup_rule: Literal["none", "log"] = "none"
    #: Global batch (micro-batch * grad accumulation * workers) that ``base_lr`` was tuned for.
    reference_batch: int | None = field(default=None, metadata=limits(gt=0))

    def validate(self, path: str) -> None:
        _require_positive(_prefix(path), "reference_batch", self.reference_batch)


@dataclass
class ScheduleConfig:
    """The whole schedule: warmup to ``base_lr``, then ``decay`` (or the ``stages`` chain)."""

    #: Peak LR reached at the end of warmup (before the opt-in scaling rule).
    base_lr: float = field(default=0.001, metadata=limits(gt=0, le=MAX_LR))
    #: Length of the run in optimizer steps. Set exactly one of total_steps / epochs.
    total_steps: int | None = field(default=None, metadata=limits(gt=0))
    #: Length of the run in epochs; converted once to steps (rounded up).
    epochs: float | None = field(default=None, metadata=limits(gt=0, le=MAX_EPOCHS))
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    decay: DecayConfig = field(default_factory=DecayConfig)
    #: Optional chain of decay stages after warmup; when set, ``decay`` is not used.
    stages: list[StageConfig] = field(default_factory=list)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)

    def validate(self, path: str) -> None:
        p = _prefix(path)
        if self.base_lr <= 0:
            raise ConfigError(f"{p}base_lr: must be > 0, got {self.base_lr}")
        if self.total_steps is not None and self.total_steps <= 0:
            raise ConfigError(f"{p}total_steps: must be > 0, got {self.total_steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"{p}epochs: must be > 0, got {self.epochs}")
        if self.total_steps is not None and self.epochs is not None:
            raise ConfigError(
                f"{p}total_steps ({self.total_steps}) and {p}epochs ({self.epochs}): set one, not both"
            )
        for i, stage in enumerate(self.stages):
            if stage.decay.period != "after_warmup":
                raise ConfigError(
                    f"{p}stages[{i}].decay.period: only 'after_warmup' is allowed in a stage "
                    f"(got {stage.decay.period!r}); use schedule.decay.period without stages"
                )
        for i, stage in enumerate(self.stages[:-1]):
            if stage.open_ended:
                raise ConfigError(
                    f"{p}stages[{i}].steps: only the last stage may run to the end; set its steps"
                )
        warm = self.warmup.steps
        too_long = isinstance(warm, int) and self.total_steps is not None and warm >= self.total_steps
        if too_long and self.warmup.kind != "none":  # kind none ignores steps (a lint says so)
            raise ConfigError(
                warmup_too_long(
                    f"{p}warmup.steps ({warm})",
                    warm,
                    f"{p}total_steps ({self.total_steps})",
                    self.total_steps,
                )
            )


def warmup_too_long(warmup_text: str, warmup_steps: int, total_text: str, total_steps: int) -> str:
    """The message for warmup >= total, e.g. ``schedule.warmup.steps (5000) exceeds schedule.total_steps
    (3000)``; both texts name their field and value."""
    verb = "exceeds" if warmup_steps > total_steps else "equals"
    return (
        f"{warmup_text} {verb} {total_text}; "
        "warmup must end before the last step (shorten the warmup or train longer)"
    )
