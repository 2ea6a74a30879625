"""The training data stream: a seeded permutation per epoch, consumed in global micro-batches.

Position is kept as ``(epoch, samples_in_epoch)`` counted in *global* samples, so a resume continues
from the exact sample without replaying data, and stays well defined when the batch size or world size
changes. Each global micro-batch of ``micro_batch * world`` samples is split by rank; an epoch's tail
shorter than one global micro-batch is dropped.

A task that plans its own batches (``Task.epoch_batches``: variable batch sizes and shapes, such as
PaddleOCR's multi-scale sampler) is consumed by :class:`PlannedStream` instead, positioned at
``(epoch, batch)``; :func:`make_stream` picks one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import CheckpointError, TaskError

__all__ = ["DataStream", "PlannedStream", "Plan", "make_stream", "steps_per_epoch"]


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
    #: Global samples handed out by this object (for throughput logs; not part of the position).
    consumed: int = field(default=0, init=False, repr=False)

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
        self.consumed += self.global_micro_batch
        return order[start : start + self.micro_batch].tolist()

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "samples_in_epoch": self.samples_in_epoch}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.samples_in_epoch = int(state["samples_in_epoch"])


#: ``Task.epoch_batches``'s answer: per micro-batch, (tag, sample indices); the task reads both back in
#: ``train_arrays(tag + indices, epoch)``.
Plan = list[tuple[list[int], list[int]]]


class PlannedStream:
    """A task's own batch plan (``Task.epoch_batches``, see :mod:`app.tasks.base`), consumed in order.

    Position is ``(epoch, batch)``: this rank's next micro-batch is batch ``batch`` of the epoch's plan, so a
    resume continues at the exact batch. ``state()`` also records ``samples_in_epoch`` (global samples
    consumed, every rank's plan having the same batch sizes) for the checkpoint's readers.
    """

    def __init__(self, plan: Callable[[int, int, int], Plan], world: int = 1, rank: int = 0) -> None:
        self.plan, self.world, self.rank = plan, world, rank
        self.epoch, self.batch, self.samples_in_epoch = 0, 0, 0
        self.consumed = 0  # global samples handed out (for throughput logs; not part of the position)
        self._epoch, self._batches = -1, []
        self.micro_batches_per_epoch = 0
        self.micro_batches_per_epoch = len(self._plan_for(0))

    def _plan_for(self, epoch: int) -> Plan:
        if self._epoch != epoch:
            batches = self.plan(epoch, self.world, self.rank)
            if not batches or (self.micro_batches_per_epoch and len(batches) != self.micro_batches_per_epoch):
                raise TaskError(
                    f"the task planned {len(batches)} micro-batches for epoch {epoch} (rank {self.rank}); "
                    f"every epoch needs the same number, at least one ({self.micro_batches_per_epoch} in epoch 0)"
                )
            self._epoch, self._batches = epoch, batches
        return self._batches

    def next_batch(self) -> tuple[int, list[int]]:
        """``(epoch, tag + indices)`` of this rank's next micro-batch, advancing the position."""
        if self.batch >= self.micro_batches_per_epoch:
            self.epoch, self.batch, self.samples_in_epoch = self.epoch + 1, 0, 0
        tag, indices = self._plan_for(self.epoch)[self.batch]
        self.batch += 1
        self.samples_in_epoch += len(indices) * self.world
        self.consumed += len(indices) * self.world
        return self.epoch, [*tag, *indices]

    def lookahead(self) -> PlannedStream:
        """A copy at the same position, to plan batches ahead without moving this stream."""
        ahead = PlannedStream.__new__(PlannedStream)
        ahead.__dict__.update(self.__dict__)
        return ahead

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "samples_in_epoch": self.samples_in_epoch, "batch": self.batch}

    def restore(self, state: dict[str, int]) -> None:
        if "batch" not in state:
            raise CheckpointError(
                "the checkpoint's data position counts samples, but this task plans its own batches "
                f"(position {state})",
                hint="the task's batching changed since the checkpoint (e.g. task.options.multiscale was "
                "added): use a new checkpoint.uri and warm-start it from the old one",
            )
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self.samples_in_epoch = int(state["samples_in_epoch"])
        if not 0 <= self.batch <= self.micro_batches_per_epoch:
            raise CheckpointError(
                f"the checkpoint's data position is batch {self.batch} of epoch {self.epoch}, but an epoch "
                f"has {self.micro_batches_per_epoch} batches here",
                hint="the training set or the task's batch plan changed since the checkpoint; use a new "
                "checkpoint.uri and warm-start it from the old one",
            )


def make_stream(task: Any, micro_batch: int, seed: int, world: int, rank: int) -> DataStream | PlannedStream:
    """The task's own plan when it has one (``epoch_batches`` answering non-None), else a DataStream."""
    plan = getattr(task, "epoch_batches", None)
    if plan is not None and plan(0, world, rank) is not None:
        return PlannedStream(plan, world, rank)
    return DataStream(task.train_size(), micro_batch, seed, world, rank)
