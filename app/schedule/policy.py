"""The opt-in auto policies: epoch conversion, ``warmup.steps: auto``, and the batch-size scaling rules.

Each function is pure and documented with its formula (also in docs/schedule.md); the builder records a
note whenever one is applied.
"""

from __future__ import annotations

import logging
import math

__all__ = [
    "AUTO_WARMUP_FRACTION",
    "AUTO_WARMUP_MIN_STEPS",
    "AUTO_WARMUP_MAX_STEPS",
    "steps_from_epochs",
    "auto_warmup_steps",
    "scale_lr",
    "log_rule_warmup",
]

log = logging.getLogger(__name__)

#: ``warmup.steps: auto`` takes this fraction of the total steps...
AUTO_WARMUP_FRACTION = 0.06
#: ...but at least this many steps (short fine-tunes still get a real ramp)...
AUTO_WARMUP_MIN_STEPS = 10
#: ...and never more than this many (or 10 % of the total).
AUTO_WARMUP_MAX_STEPS = 2000


def steps_from_epochs(epochs: float, steps_per_epoch: int, rounding: str = "up") -> int:
    """up: ceil(epochs * steps_per_epoch), a fractional last epoch still counts its partial steps;
    nearest_even: Python's round(epochs * steps_per_epoch) (ties to even), as PaddleOCR rounds warmup."""
    if rounding == "nearest_even":
        return max(round(epochs * steps_per_epoch), 0)
    return max(math.ceil(epochs * steps_per_epoch - 1e-9), 0)


def auto_warmup_steps(total_steps: int) -> int:
    """W = clamp(round(0.06 * T), min(10, floor(0.1 T)), min(floor(0.1 T), 2000)).

    6 % of the run, at least 10 steps for short fine-tunes, never above 10 % of the run (so the
    warmup-length lint never fires on an auto value) nor above 2000 steps.
    """
    ceiling = min(total_steps // 10, AUTO_WARMUP_MAX_STEPS)
    floor = min(AUTO_WARMUP_MIN_STEPS, ceiling)
    return min(max(round(AUTO_WARMUP_FRACTION * total_steps), floor), ceiling)


def scale_lr(base_lr: float, rule: str, global_batch: int, reference_batch: int) -> float:
    """linear: base_lr * B / B_ref (Goyal et al. 2017); sqrt: base_lr * sqrt(B / B_ref); none: base_lr."""
    ratio = global_batch / reference_batch
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    return base_lr


def log_rule_warmup(warmup_steps: int, global_batch: int, reference_batch: int) -> int:
    """W' = round(W * (1 + ln(B / B_ref))) when B > B_ref, else W unchanged.

    A larger batch takes larger effective steps early, so it gets a longer ramp; the growth is only
    logarithmic so doubling the batch adds ~69 % rather than 100 %.
    """
    if global_batch <= reference_batch:
        return warmup_steps
    return round(warmup_steps * (1.0 + math.log(global_batch / reference_batch)))
