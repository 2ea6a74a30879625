"""An LR multiplier for freeze/unfreeze stages: ``lr(t) = inner_lr(t) * factor(t)``, resumable exactly.

``changes`` is a list of ``(step, factor, rewarmup_steps)``. Before the first change the factor is 1.
From a change at step ``s`` with factor ``f`` and re-warmup ``r`` on, the factor ramps linearly from 0:

    factor(s + k) = f * k / r   for 0 <= k < r        factor(s + k) = f   for k >= r (or r == 0)

so the step where layers unfreeze runs at LR 0 and the full ``f * inner_lr`` is reached at ``s + r`` (the
same convention as a linear warmup from ``start_lr = 0``). A later change replaces an earlier one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from paddle.optimizer.lr import LRScheduler

from app.schedule.phased import plain_state

__all__ = ["FactorSchedule", "factor_at"]

log = logging.getLogger(__name__)

Change = tuple[int, float, int]


def factor_at(changes: Sequence[Change], t: int) -> float:
    """The multiplier in effect at step ``t`` (see the module docstring)."""
    factor = 1.0
    for step, target, rewarmup in changes:
        if t < step:
            break
        done = t - step
        factor = target if rewarmup <= 0 or done >= rewarmup else target * done / rewarmup
    return factor


def _checked(changes: Sequence[Sequence[float]]) -> list[Change]:
    out: list[Change] = []
    for item in changes:
        step, factor, rewarmup = int(item[0]), float(item[1]), int(item[2])
        if step < 0 or factor < 0 or rewarmup < 0:
            raise ValueError(f"FactorSchedule change {tuple(item)}: step, factor and rewarmup must be >= 0")
        out.append((step, factor, rewarmup))
    out.sort(key=lambda c: c[0])
    return out


class FactorSchedule(LRScheduler):
    """Wraps ``inner`` (any Paddle ``LRScheduler``) and multiplies its LR by :func:`factor_at`.

    The wrapper owns ``inner``: each ``step()`` steps ``inner`` once. Its step counter starts at
    ``inner.last_epoch``, so wrapping a fresh scheduler starts at step 0. ``state_dict()`` nests the inner
    state as plain JSON data; ``set_state_dict`` restores both and continues the same LR sequence.
    """

    def __init__(self, inner: LRScheduler, changes: Sequence[Sequence[float]] = ()) -> None:
        self.inner = inner
        self.changes = _checked(changes)
        self._constructed = False
        super().__init__(learning_rate=float(inner.base_lr), last_epoch=int(inner.last_epoch) - 1)
        self._constructed = True

    def factor(self, t: int | None = None) -> float:
        return factor_at(self.changes, self.last_epoch if t is None else t)

    def get_lr(self) -> float:
        return float(self.inner()) * self.factor()

    def step(self, epoch: int | None = None) -> None:
        if self._constructed:  # the base constructor's own step() only syncs our counter to inner's
            self.inner.step(epoch)
        super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_epoch": int(self.last_epoch),
            "last_lr": float(self.last_lr),
            "changes": [list(c) for c in self.changes],
            "inner": plain_state(self.inner.state_dict(), "inner"),
        }

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key in ("last_epoch", "inner"):
            if key not in state_dict:
                raise KeyError(f"FactorSchedule state has no {key!r}")
        saved = [tuple(c) for c in state_dict.get("changes", [])]
        if saved and saved != [tuple(c) for c in self.changes]:
            log.warning(
                "LR factor changes differ from the checkpoint's (%s now, %s saved)", self.changes, saved
            )
        self.inner.set_state_dict(state_dict["inner"])
        self.last_epoch = int(state_dict["last_epoch"])
        self.last_lr = self.get_lr()

    set_dict = set_state_dict
