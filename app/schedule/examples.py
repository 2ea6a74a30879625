"""Example custom warmups for ``warmup.kind: custom`` (documentation you can run, and test fixtures).

Use them as ``warmup: {kind: custom, callable: "app.schedule.examples:quadratic_warmup", steps: 100}``.
"""

from __future__ import annotations

from paddle.optimizer.lr import LRScheduler

__all__ = ["quadratic_warmup", "StepwiseWarmup"]


def quadratic_warmup(step: int, warmup_steps: int, start_lr: float, base_lr: float) -> float:
    """lr(t) = start + (base - start) * (t / W)^2."""
    return start_lr + (base_lr - start_lr) * (step / warmup_steps) ** 2


class StepwiseWarmup(LRScheduler):
    """A stateful warmup: the LR rises in 4 equal stairs, start, ..., reaching base_lr at step W.

    lr(t) = start + (base - start) * floor(4 t / W) / 4. It keeps its own counter, so it shows that a hook
    scheduler's state is saved and restored with the schedule.
    """

    def __init__(self, learning_rate: float, warmup_steps: int, start_lr: float = 0.0) -> None:
        self.warmup_steps = warmup_steps
        self.start_lr = start_lr
        super().__init__(learning_rate=learning_rate)

    def get_lr(self) -> float:
        stair = min(4 * self.last_epoch // self.warmup_steps, 4)
        return self.start_lr + (self.base_lr - self.start_lr) * stair / 4
