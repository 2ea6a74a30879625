"""PaddleOCR's ``MultiScaleSampler`` batches, planned as a pure function of ``(seed, epoch)``.

PaddleOCR (``ppocr/data/multi_scale_sampler.py``, training mode, one process): each scale ``[w, h]`` is
rounded down to multiples of ``divided_factor = [fw, fh]``; its batch size is ``first_bs`` (``fix_bs``)
or ``int(max(1, first_w * first_h * first_bs / (w * h)))``. The epoch's batch list cycles through the
scales until the data is covered (the last batch filled up from the start of the order), so every
epoch has the same number of batches of each scale; indices and the batch order are shuffled per epoch.

Here every shuffle draws from ``numpy.random.default_rng([seed, epoch, stream])`` instead of Python's
global ``random`` seeded with the epoch number, so the batches at any step are reproducible from the
run's seed and position alone (an exact resume needs nothing else). The scale and batch-size arithmetic
and the batch composition are PaddleOCR's; the particular shuffles differ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from app.config.typed import limits
from app.errors import ConfigError

__all__ = ["MultiScaleOptions", "ScaleBatch", "scale_batch_sizes", "epoch_plan", "MultiScaleStream"]

log = logging.getLogger(__name__)


@dataclass
class MultiScaleOptions:
    """``Train.sampler`` of a PaddleOCR config (``name: MultiScaleSampler``)."""

    #: [width, height] per scale, e.g. [[320, 32], [320, 48], [320, 64]].
    scales: list[list[int]] = field(
        default_factory=lambda: [[320, 32], [320, 48], [320, 64]], metadata=limits(gt=0, le=8192)
    )
    #: Batch size of the first scale (PaddleOCR ``first_bs``).
    first_bs: int = field(default=128, metadata=limits(gt=0))
    #: Same batch size at every scale; false = scale it by area so each batch holds about as many pixels.
    fix_bs: bool = True
    #: Scales are rounded down to multiples of [width factor, height factor].
    divided_factor: list[int] = field(default_factory=lambda: [8, 16], metadata=limits(gt=0))

    def validate(self, path: str) -> None:
        if not self.scales or any(len(s) != 2 or min(s) <= 0 for s in self.scales):
            raise ConfigError(
                f"{path}.scales: expected [[width, height], ...] of positive ints, got {self.scales}"
            )
        if len(self.divided_factor) != 2 or min(self.divided_factor) <= 0:
            raise ConfigError(
                f"{path}.divided_factor: expected [w_factor, h_factor] > 0, got {self.divided_factor}"
            )
        for w, h in self.scales:
            if w < self.divided_factor[0] or h < self.divided_factor[1]:
                raise ConfigError(
                    f"{path}.scales: [{w}, {h}] is smaller than divided_factor {self.divided_factor}"
                )


@dataclass(frozen=True)
class ScaleBatch:
    """One batch: images resized (and padded) to ``width`` x ``height``; dataset ``indices``."""

    width: int
    height: int
    indices: tuple[int, ...]


def scale_batch_sizes(opts: MultiScaleOptions) -> list[tuple[int, int, int]]:
    """``(w, h, batch_size)`` per scale, PaddleOCR's arithmetic (the base area uses the unrounded first
    scale, as PaddleOCR does)."""
    fw, fh = opts.divided_factor
    base_w, base_h = opts.scales[0]
    base = base_w * base_h * opts.first_bs
    out = []
    for w0, h0 in opts.scales:
        w, h = int((w0 // fw) * fw), int((h0 // fh) * fh)
        out.append((w, h, opts.first_bs if opts.fix_bs else int(max(1, base / (h * w)))))
    return out


def _slots(n: int, pairs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The epoch's batch shapes: cycle the scales until ``n`` samples are covered (PaddleOCR's loop)."""
    slots, covered = [], 0
    while covered < n:
        for pair in pairs:
            slots.append(pair)
            covered += pair[2]
    return slots


def epoch_plan(
    n: int, opts: MultiScaleOptions, seed: int, epoch: int, world: int = 1, rank: int = 0
) -> list[ScaleBatch]:
    """Every batch of ``epoch`` for ``rank`` in order; each batch is full (a short last batch is filled up
    from the start of the epoch's order, as PaddleOCR does). With ``world`` processes each rank takes
    ``n // world`` samples of the shuffled order (``order[rank::world]``, PaddleOCR's split); the batch
    shapes are the same on every rank, so the ranks step together."""
    per_rank = n // world
    if per_rank <= 0:
        raise ConfigError(f"task.options.multiscale: {n} training samples for {world} processes")
    pairs = scale_batch_sizes(opts)
    order_rng = np.random.default_rng([seed, epoch, 0])
    batch_rng = np.random.default_rng([seed, epoch, 1])
    slots = _slots(per_rank, pairs)
    shapes = [slots[i] for i in batch_rng.permutation(len(slots))]
    order = order_rng.permutation(n)[rank::world][:per_rank].tolist()
    n = per_rank
    out, start = [], 0
    for w, h, size in shapes:
        ids = order[start : min(start + size, n)]
        if len(ids) < size:
            ids = ids + order[: size - len(ids)]
        out.append(ScaleBatch(w, h, tuple(ids)))
        start += size
    return out


class MultiScaleStream:
    """The training stream of multi-scale batches: position ``(epoch, batch)``, exact on resume.

    The counterpart of :class:`app.train.data.DataStream` for variable batch shapes: ``next_batch()``
    returns the next :class:`ScaleBatch` (and its epoch) and advances; ``state()`` / ``restore()`` carry
    the position in a checkpoint. Every epoch has ``batches_per_epoch`` batches.
    """

    def __init__(
        self, n: int, opts: MultiScaleOptions, seed: int, world: int = 1, rank: int = 0, epoch: int = 0
    ) -> None:
        self.n, self.opts, self.seed, self.world, self.rank = n, opts, seed, world, rank
        self.epoch, self.batch = epoch, 0
        self._plan_epoch, self._plan = -1, []
        self.batches_per_epoch = len(self._plan_for(epoch))

    def _plan_for(self, epoch: int) -> list[ScaleBatch]:
        if self._plan_epoch != epoch:
            self._plan = epoch_plan(self.n, self.opts, self.seed, epoch, self.world, self.rank)
            self._plan_epoch = epoch
        return self._plan

    def next_batch(self) -> tuple[int, ScaleBatch]:
        """(epoch, batch) for the next micro-step, advancing the position."""
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        out = self._plan_for(self.epoch)[self.batch]
        self.batch += 1
        return self.epoch, out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
