"""Training losses kept on the device, read back to the host only at log steps and before saves.

Reading a loss (``float(loss)``) waits for the device to finish everything queued; doing it every step
keeps a GPU's queue empty. Each micro-batch's loss stays a device tensor here; :meth:`LossWindow.read`
(at a log step) computes the window's mean and an all-finite flag on the device and reads those two
numbers once; :meth:`LossWindow.all_finite` (before an evaluation or a checkpoint save) reads one flag.

The bound this gives, documented in docs/data.md: a non-finite loss at optimizer step ``k`` is noticed at
the next check, which comes at the latest at the next log step, so at most ``train.log_every_steps``
updates (the bad one included) are applied before the run stops with exit 5; no evaluation and no
checkpoint ever sees them, because every save and every evaluation is preceded by a check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import paddle

__all__ = ["LossWindow", "NonFinite"]


@dataclass(frozen=True)
class NonFinite:
    """The first non-finite micro-batch loss since the last check."""

    value: float
    step: int
    lr: float


@dataclass
class LossWindow:
    losses: list[paddle.Tensor] = field(default_factory=list)  # float64 scalars, on the device
    where: list[tuple[int, float]] = field(default_factory=list)  # (step, lr) of each, host values
    checked: int = 0  # losses[:checked] are known finite

    def add(self, loss: paddle.Tensor, step: int, lr: float) -> None:
        self.losses.append(loss.detach().astype("float64").reshape([]))
        self.where.append((step, lr))

    def _first_bad(self, start: int) -> NonFinite:
        values = paddle.stack(self.losses[start:]).numpy()  # the failure path: a sync does not matter
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        step, lr = self.where[start + i]
        return NonFinite(float(values[i]), step, lr)

    def all_finite(self) -> NonFinite | None:
        """Check the losses added since the last check (one device read); the first bad one, if any."""
        if self.checked == len(self.losses):
            return None
        ok = bool(paddle.isfinite(paddle.stack(self.losses[self.checked :])).all())
        if not ok:
            return self._first_bad(self.checked)
        self.checked = len(self.losses)
        return None

    def read(self) -> tuple[float, NonFinite | None]:
        """The window's mean loss and its first non-finite loss (one device read); starts a new window."""
        if not self.losses:
            return math.nan, None
        stacked = paddle.stack(self.losses)
        summary = paddle.stack([stacked.mean(), paddle.isfinite(stacked).all().astype("float64")]).numpy()
        bad = None if summary[1] else self._first_bad(0)
        self.losses, self.where, self.checked = [], [], 0
        return float(summary[0]), bad
