"""Random state that survives a restart exactly.

Paddle's CPU generator state cannot be serialized (its ``GeneratorState`` exposes only seed and offset),
and in a multi-process run only rank 0 writes the checkpoint, so Paddle, NumPy and Python are re-seeded at
every optimizer step from ``(run seed, step, rank)``: their state is a function of the step on every rank.
Python's and NumPy's states are also saved as plain JSON and restored, for code that draws between steps.

Data augmentation draws from its own seeds: :func:`seeded` sets the global generators from
``(run seed, epoch, sample index)`` around one sample's transforms and puts the previous state back, so a
batch is the same whichever process (trainer or data worker) makes it, and the trainer's own draws do not
depend on how many batches it made itself.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import paddle

__all__ = ["seed_all", "seed_for_step", "seeded", "capture", "restore", "SAMPLE", "BATCH"]

#: :func:`seeded` streams: one sample's transforms, and a batch's (keyed by its first index).
SAMPLE, BATCH = 0, 1


def _derive(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_all(seed: int, rank: int = 0) -> None:
    random.seed(_derive(seed, rank, 1))
    np.random.seed(_derive(seed, rank, 2))
    paddle.seed(_derive(seed, rank, 3))


def seed_for_step(seed: int, step: int, rank: int = 0) -> None:
    """Make every generator's draws in this step a function of ``(seed, step, rank)``.

    Paddle (dropout), NumPy and Python (task augmentation) are all re-seeded, so a resumed run, on any
    rank, draws exactly what the uninterrupted run drew, without gathering per-rank states.
    """
    paddle.seed(_derive(seed, rank, 4, step))
    np.random.seed(_derive(seed, rank, 5, step))
    random.seed(_derive(seed, rank, 6, step))


@contextmanager
def seeded(seed: int, epoch: int, index: int, stream: int = SAMPLE) -> Iterator[None]:
    """Python's and NumPy's global generators seeded from ``(seed, epoch, index, stream)`` inside the block;
    their previous states are restored on the way out."""
    py, np_state = random.getstate(), np.random.get_state()
    random.seed(_derive(seed, 7, stream, epoch, index))
    np.random.seed(_derive(seed, 8, stream, epoch, index))
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)


def capture() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }


def restore(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    keys = np.asarray(n["keys"], dtype=np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached"]))
