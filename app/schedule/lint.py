"""Schedule lints: settings that are legal but usually a mistake, returned as warning strings.

A warmup that does not end before the last step is not a lint but a ConfigError (see ``build``).
"""

from __future__ import annotations

import logging

from app.schedule.config import ScheduleConfig

__all__ = [
    "ADAPTIVE_OPTIMIZERS",
    "MAX_WARMUP_FRACTION",
    "SHORT_RUN_STEPS",
    "SHORT_RUN_MAX_WARMUP",
    "lint_schedule",
]

log = logging.getLogger(__name__)

ADAPTIVE_OPTIMIZERS = frozenset({"adam", "adamw"})
#: Warn when warmup takes more than this fraction of the run.
MAX_WARMUP_FRACTION = 0.10
#: Warn when a run shorter than this...
SHORT_RUN_STEPS = 2000
#: ...warms up for longer than this.
SHORT_RUN_MAX_WARMUP = 500


def _length_lints(total_steps: int, warmup_steps: int) -> list[str]:
    out = []
    if warmup_steps > MAX_WARMUP_FRACTION * total_steps:
        out.append(
            f"warmup is {warmup_steps} of {total_steps} steps ({100 * warmup_steps / total_steps:.1f}%, "
            f"over {100 * MAX_WARMUP_FRACTION:.0f}%): a long warmup spends the fine-tune's budget below "
            "base_lr; consider schedule.warmup.steps: auto"
        )
    if total_steps < SHORT_RUN_STEPS and warmup_steps > SHORT_RUN_MAX_WARMUP:
        out.append(
            f"warmup of {warmup_steps} steps in a run of only {total_steps} steps "
            f"(over {SHORT_RUN_MAX_WARMUP} steps while total < {SHORT_RUN_STEPS}): short fine-tunes rarely "
            "need more than a few hundred warmup steps"
        )
    return out


def lint_schedule(
    cfg: ScheduleConfig,
    *,
    total_steps: int,
    warmup_steps: int,
    optimizer_name: str,
) -> list[str]:
    """Warnings for ``cfg`` resolved to ``total_steps`` / ``warmup_steps`` with optimizer ``optimizer_name``."""
    warm = cfg.warmup
    out = _length_lints(total_steps, warmup_steps) if warmup_steps > 0 else []
    adaptive = optimizer_name.lower() in ADAPTIVE_OPTIMIZERS
    if warmup_steps > 0 and warm.start_lr == 0 and warm.start_lr_lint and adaptive:
        out.append(
            f"schedule.warmup.start_lr is 0 with {optimizer_name}: step 0 updates Adam's moment estimates "
            "with an LR of 0 (a wasted step whose statistics still count); a small start_lr such as "
            "base_lr / 100 avoids it"
        )
    if warm.kind == "none" and (warm.steps not in (None, 0) or warm.epochs):
        value = warm.steps if warm.steps is not None else f"{warm.epochs} epochs"
        out.append(f"schedule.warmup.kind is 'none', so schedule.warmup length ({value}) is ignored")
    if warm.kind != "none" and warm.steps is None and warm.epochs is None:
        out.append(
            f"schedule.warmup.kind is {warm.kind!r} but neither schedule.warmup.steps nor .epochs is set: "
            "the run starts at full base_lr (set steps, epochs or steps: auto)"
        )
    return out
