"""The training data stream: a seeded permutation per epoch, consumed in global micro-batches.

Position is kept as ``(epoch, samples_in_epoch)`` counted in *global* samples, so a resume continues
from the exact sample without replaying data, and stays well defined when the batch size or world size
changes. Each global micro-batch of ``micro_batch * world`` samples is split by rank; an epoch's tail
shorter than one global micro-batch is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.errors import TaskError

__all__ = ["DataStream", "steps_per_epoch"]


def steps_per_epoch(size: int, micro_batch: int, world: int, accum: int) -> int:
    """Optimizer steps per epoch: whole global micro-batches per epoch, divided by accumulation."""
    return max(1, (size // (micro_batch * world)) // accum)


@dataclass
class DataStream:
    size: int
    micro_batch: int
    seed: int
    world: int = 1
    rank: int = 0
    epoch: int = 0
    samples_in_epoch: int = 0

    def __post_init__(self) -> None:
        if self.global_micro_batch > self.size:
            raise TaskError(
                f"training set has {self.size} samples, fewer than one global micro-batch "
                f"({self.micro_batch} x {self.world} processes)",
                hint="lower train.batch_size",
            )
        self._order_epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    @property
    def global_micro_batch(self) -> int:
        return self.micro_batch * self.world

    @property
    def micro_batches_per_epoch(self) -> int:
        return self.size // self.global_micro_batch

    def _order_for(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = rng.permutation(self.size)
            self._order_epoch = epoch
        return self._order

    def next_batch(self) -> tuple[int, list[int]]:
        """``(epoch, indices)`` of this rank's next micro-batch, advancing the position."""
        indices = self.next_indices()
        return self.epoch, indices

    def lookahead(self) -> DataStream:
        """A copy at the same position, to plan batches ahead without moving this stream."""
        return DataStream(
            self.size, self.micro_batch, self.seed, self.world, self.rank, self.epoch, self.samples_in_epoch
        )

    def next_indices(self) -> list[int]:
        """This rank's indices for the next micro-batch, advancing the position."""
        if self.samples_in_epoch + self.global_micro_batch > self.size:
            self.epoch += 1
            self.samples_in_epoch = 0
        order = self._order_for(self.epoch)
        start = self.samples_in_epoch + self.rank * self.micro_batch
        self.samples_in_epoch += self.global_micro_batch
        return order[start : start + self.micro_batch].tolist()

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "samples_in_epoch": self.samples_in_epoch}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
