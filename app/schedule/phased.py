"""A Paddle ``LRScheduler`` made of consecutive phases (warmup, decay stages, hold), resumable exactly.

The LR at optimizer step ``t`` is a closed-form function of ``t`` (the phase containing ``t``, evaluated at
``t - phase.start``), so the scheduler's whole state is the step counter. The one exception is a custom
warmup given as a user ``LRScheduler`` subclass: it is stepped alongside during warmup and its own state
is nested in ours. ``state_dict()`` is plain JSON-ready data.

Convention (Paddle's): right after construction ``sched()`` is lr(0); after k calls of ``step()`` it is
lr(k). Past the last phase the LR holds the last phase's final value.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle
from paddle.optimizer.lr import LRScheduler

from app.schedule.curves import Curve

__all__ = ["Phase", "PhasedSchedule", "plain_state"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    """Steps ``[start, start + length)`` follow ``curve(t - start)``."""

    name: str
    start: int
    length: int
    curve: Curve

    @property
    def end(self) -> int:
        return self.start + self.length


def plain_state(value: Any, where: str = "state") -> Any:
    """``value`` as plain JSON data (dicts with str keys, lists, str, int, float, bool, None)."""
    if isinstance(value, dict):
        return {str(k): plain_state(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_state(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, paddle.Tensor):
        return plain_state(value.numpy().tolist(), where)
    if isinstance(value, np.ndarray):
        return plain_state(value.tolist(), where)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return plain_state(item(), where)
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored as JSON checkpoint state")


class PhasedSchedule(LRScheduler):
    """An LR schedule of consecutive :class:`Phase` objects starting at step 0.

    ``hook`` (optional) is a user ``LRScheduler`` that supplies the LR for steps ``[0, hook_steps)``; it is
    stepped once per ``step()`` during those steps and its state is saved under ``"warmup_hook"``.
    """

    def __init__(
        self,
        phases: Sequence[Phase],
        *,
        peak_lr: float,
        hook: LRScheduler | None = None,
        hook_steps: int = 0,
    ) -> None:
        if not phases or phases[0].start != 0:
            raise ValueError("phases must start at step 0")
        for before, after in zip(phases, phases[1:], strict=False):
            if after.start != before.end:
                raise ValueError(f"phase {after.name!r} does not start where {before.name!r} ends")
        self.phases = list(phases)
        self._starts = [p.start for p in self.phases]
        self._hook = hook
        self._hook_steps = hook_steps if hook is not None else 0
        super().__init__(learning_rate=float(peak_lr), last_epoch=-1, verbose=False)

    @property
    def total_steps(self) -> int:
        return self.phases[-1].end

    def phase_at(self, t: int) -> Phase:
        return self.phases[max(bisect.bisect_right(self._starts, t) - 1, 0)]

    def lr_at(self, t: int) -> float:
        """The closed-form LR at step ``t`` (ignores a hook's state; use ``sched()`` for the live value)."""
        phase = self.phase_at(t)
        return float(phase.curve(min(t, phase.end) - phase.start))

    def get_lr(self) -> float:
        t = self.last_epoch
        if self._hook is not None and 0 <= t < self._hook_steps:
            return float(self._hook())
        return self.lr_at(t)

    def step(self, epoch: int | None = None) -> None:
        if self._hook is not None:
            target = self.last_epoch + 1 if epoch is None else int(epoch)
            # The hook was built at its own step 0, which is our step 0: advance it for 1..hook_steps-1.
            if 0 < target < self._hook_steps:
                self._hook.step(None if epoch is None else target)
        super().step(epoch)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"last_epoch": int(self.last_epoch), "last_lr": float(self.last_lr)}
        if self._hook is not None:
            state["warmup_hook"] = plain_state(self._hook.state_dict(), "warmup_hook")
        return state

    def set_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "last_epoch" not in state_dict:
            raise KeyError("scheduler state has no 'last_epoch' (not a warmstart schedule state?)")
        self.last_epoch = int(state_dict["last_epoch"])
        if self._hook is not None:
            if "warmup_hook" not in state_dict:
                raise KeyError("scheduler state has no 'warmup_hook' but this schedule uses a custom warmup")
            self._hook.set_state_dict(state_dict["warmup_hook"])
        # Recomputed, not copied: equal to the saved value when the schedule is unchanged, and the right
        # value at this step when a resume deliberately changed it (e.g. a new batch size).
        self.last_lr = self.get_lr()

    set_dict = set_state_dict
