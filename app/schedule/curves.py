"""The LR formulas: each warmup and decay kind as a pure function of a phase-local step.

A *curve* maps a step ``t`` counted from the start of its phase to an LR. Decay curves run from ``peak``
(the LR at which the phase starts) over ``span`` steps and hold their value at ``t = span`` for any later
step. docs/schedule.md lists the same formulas; tests check them as tables of numbers.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable

from app.schedule.config import DecayConfig

__all__ = ["Curve", "linear_warmup", "exponential_warmup", "decay_curve", "wsd_lengths"]

log = logging.getLogger(__name__)

Curve = Callable[[int], float]


def linear_warmup(steps: int, start_lr: float, base_lr: float) -> Curve:
    """lr(t) = start + (base - start) * t / W."""

    def curve(t: int) -> float:
        return start_lr + (base_lr - start_lr) * min(t, steps) / steps

    return curve


def exponential_warmup(steps: int, start_lr: float, base_lr: float, power: float) -> Curve:
    """lr(t) = start + (base - start) * (e^(p t / W) - 1) / (e^p - 1): slow start, steep finish."""
    denominator = math.expm1(power)

    def curve(t: int) -> float:
        return start_lr + (base_lr - start_lr) * math.expm1(power * min(t, steps) / steps) / denominator

    return curve


def _cosine(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: cfg.min_lr + (peak - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t / span))


def _linear(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: cfg.min_lr + (peak - cfg.min_lr) * (1.0 - t / span)


def _polynomial(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: cfg.end_lr + (peak - cfg.end_lr) * (1.0 - t / span) ** cfg.power


def _piecewise(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: float(cfg.values[bisect.bisect_right(cfg.boundaries, t)])


def _multistep(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: peak * cfg.gamma ** bisect.bisect_right(cfg.milestones, t)


def _exponential(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: max(cfg.min_lr, peak * cfg.gamma**t)


def _constant(cfg: DecayConfig, span: int, peak: float) -> Curve:
    return lambda t: peak


def wsd_lengths(span: int, decay_fraction: float) -> tuple[int, int]:
    """(stable, decay) steps of warmup_stable_decay: decay = round(fraction * span), stable = the rest."""
    decay_steps = round(decay_fraction * span)
    return span - decay_steps, decay_steps


def _warmup_stable_decay(cfg: DecayConfig, span: int, peak: float) -> Curve:
    stable_steps, decay_steps = wsd_lengths(span, cfg.decay_fraction)

    def curve(t: int) -> float:
        if t <= stable_steps:
            return peak
        return peak + (cfg.min_lr - peak) * (t - stable_steps) / decay_steps

    return curve


_DECAYS: dict[str, Callable[[DecayConfig, int, float], Curve]] = {
    "cosine": _cosine,
    "linear": _linear,
    "polynomial": _polynomial,
    "piecewise": _piecewise,
    "multistep": _multistep,
    "exponential": _exponential,
    "constant": _constant,
    "warmup_stable_decay": _warmup_stable_decay,
}


def decay_curve(cfg: DecayConfig, *, span: int, peak: float, warmup_steps: int = 0) -> Curve:
    """The curve of ``cfg.kind`` starting at ``peak`` and lasting ``span`` (>= 1) steps.

    ``warmup_steps`` is the default ``timescale`` of ``inverse_sqrt`` (1 when there is no warmup).
    """
    if span < 1:
        raise ValueError(f"a decay phase needs at least one step, got span={span}")
    if cfg.kind == "inverse_sqrt":
        tau = cfg.timescale or max(warmup_steps, 1)
        shape: Curve = lambda t: max(cfg.min_lr, peak * math.sqrt(tau / (tau + t)))  # noqa: E731
    else:
        shape = _DECAYS[cfg.kind](cfg, span, peak)

    def curve(t: int) -> float:
        return float(shape(min(max(t, 0), span)))

    return curve
