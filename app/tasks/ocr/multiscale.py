"""PaddleOCR's ``MultiScaleSampler`` batches, planned as a pure function of ``(seed, epoch, world, rank)``.

PaddleOCR (``ppocr/data/multi_scale_sampler.py``, training mode): each scale ``[w, h]`` is rounded down
to multiples of ``divided_factor = [fw, fh]``; its batch size is ``first_bs`` (``fix_bs``) or
``int(max(1, first_w * first_h * first_bs / (w * h)))``. Each process takes ``n // world`` samples
(``order[rank::world]``); its batch list cycles through the scales until those are covered (a batch
that runs past the end is filled up from the start of the order), so every epoch and every rank has the
same batches of each scale, and the ranks step together. With ``ds_width`` (``MultiScaleDataSet``'s
width-aware mode, label lines ``image<TAB>text<TAB>w<TAB>h``) the order is the samples sorted by
``w / h`` and is not shuffled, and a batch's width is ``h * max(1, round(r))`` with ``r`` the mean
ratio of its samples, capped at ``max_w / h``; the scale's own width is unused.

Here the shuffles draw from ``numpy.random.default_rng([seed, epoch, k])`` instead of Python's global
``random`` seeded with the epoch number, so the batches at any step are reproducible from the run's seed
and position alone (an exact resume needs nothing else). Upstream composes the batches once per run and
only reorders them each epoch; here the sample order, the scale order and the batch order are drawn
again each epoch. The scale and batch-size arithmetic and the batch composition are PaddleOCR's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from app.config.typed import limits
from app.errors import ConfigError

__all__ = ["MultiScaleOptions", "ScaleBatch", "scale_batch_sizes", "epoch_plan", "ds_width_of"]

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
    #: PaddleOCR's ``Train.dataset.ds_width``: width-aware batches (the label files carry each image's
    #: width and height as third and fourth columns).
    ds_width: bool = False
    #: ds_width only: widest batch in pixels (PaddleOCR ``max_w``).
    max_w: float = field(default=480.0, metadata=limits(gt=0))

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


def ds_width_of(ratio: float, height: int, max_w: float) -> int:
    """A ds_width batch's width from its samples' mean ``w / h`` (PaddleOCR's cap and rounding)."""
    if ratio * height >= max_w:
        ratio = max_w / height
    return height * max(1, int(round(ratio)))


def _batch(ids: list[int], w: int, h: int, opts: MultiScaleOptions, ratios: np.ndarray | None) -> ScaleBatch:
    if not opts.ds_width:
        return ScaleBatch(w, h, tuple(ids))
    assert ratios is not None
    by_ratio = np.argsort(ratios)  # numpy's default sort, as upstream
    samples = by_ratio[np.asarray(ids)]
    return ScaleBatch(ds_width_of(float(ratios[samples].mean()), h, opts.max_w), h, tuple(samples.tolist()))


def epoch_plan(
    n: int,
    opts: MultiScaleOptions,
    seed: int,
    epoch: int,
    world: int = 1,
    rank: int = 0,
    ratios: np.ndarray | None = None,
) -> list[ScaleBatch]:
    """Every batch of ``epoch`` for ``rank``, in order. ``ratios``: each sample's ``w / h`` (ds_width).

    A batch holds its scale's batch size unless the rank has fewer samples than that (then it holds all
    of them, as upstream). The batch shapes are drawn from ``(seed, epoch)`` only, so they are the same on
    every rank."""
    per_rank = n // world
    if per_rank <= 0:
        raise ConfigError(f"task.options.multiscale: {n} training samples for {world} processes")
    if opts.ds_width and (ratios is None or len(ratios) != n):
        raise ConfigError("task.options.multiscale.ds_width: every training line needs its width and height")
    pairs = scale_batch_sizes(opts)
    slots = _slots(per_rank, pairs)
    shapes = [slots[i] for i in np.random.default_rng([seed, epoch, 1]).permutation(len(slots))]
    positions = np.arange(n) if opts.ds_width else np.random.default_rng([seed, epoch, 0]).permutation(n)
    order = positions[rank::world][:per_rank].tolist()
    batches, start = [], 0
    for w, h, size in shapes:
        ids = order[start : min(start + size, per_rank)]
        if len(ids) < size:
            ids = ids + order[: size - len(ids)]
        batches.append(_batch(ids, w, h, opts, ratios))
        start += size
    return [batches[i] for i in np.random.default_rng([seed, epoch, 2]).permutation(len(batches))]
