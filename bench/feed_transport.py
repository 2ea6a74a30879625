"""How fast a data worker's batch reaches the trainer: shared-memory slots against the pipe.

One forked worker per transport serves a fixed, pre-made batch (``B x 3 x 640 x 640`` float32, built
before the fork), so only the hand-over is measured. Per batch, alternating the transports: the **round
trip** (the trainer asks, the worker writes the batch, the trainer has the arrays) and the **trainer time**
(from the moment the worker's header is readable to arrays in hand — the part that sits on the training
loop's critical path when the worker is ahead). The first batch of each (slot growth, page faults) is
not counted. Making tensors from the arrays (one copy either way) is outside both.
"""

from __future__ import annotations

import time

import numpy as np

from app.train.workers import Worker, start_worker
from bench.common import MB, interleave, load_average, ratio_figure, summarize

__all__ = ["transport_suite"]


class Fixed:
    """A "task" whose every batch is the same pre-made array (no data work in the worker)."""

    def __init__(self, batch: int, side: int = 640) -> None:
        self.array = np.random.default_rng(0).standard_normal((batch, 3, side, side), dtype=np.float32)

    def train_arrays(self, indices: list[int], epoch: int) -> dict[str, np.ndarray]:
        return {"image": self.array}


def _one(worker: Worker, trainer_times: list[float]) -> float:
    started = time.perf_counter()
    worker.send(0, [0])
    worker.results.poll(600)
    ready = time.perf_counter()
    arrays = worker.receive(600, "transport bench")
    done = time.perf_counter()
    assert arrays["image"].ndim == 4
    worker.release()
    trainer_times.append(done - ready)
    return done - started


def measure(batch: int, reps: int, side: int = 640) -> dict:
    """Pipe vs shared memory for one batch size: round trip, trainer time, MB/s; ratio = shm / pipe."""
    task = Fixed(batch, side)
    nbytes = task.array.nbytes
    workers = {"pipe": start_worker(0, task, [], slots=0)}
    workers["shm"] = start_worker(1, task, [workers["pipe"]], slots=2)
    trainer: dict[str, list[float]] = {"pipe": [], "shm": []}
    try:
        for w in workers.values():  # warm: the slot grows, pages are faulted in
            _one(w, [])
        loads = [load_average()]
        rounds = interleave(reps, {n: (lambda n=n: _one(workers[n], trainer[n])) for n in workers})
        loads.append(load_average())
    finally:
        for w in workers.values():
            w.stop()
    mb = nbytes / MB
    return {
        "batch": batch,
        "shape": [batch, 3, side, side],
        "mb": round(mb, 1),
        "round_trip_s": ratio_figure(rounds["shm"], rounds["pipe"]),
        "trainer_s": ratio_figure(trainer["shm"], trainer["pipe"]),
        "mb_per_s": {n: summarize([mb / t for t in rounds[n]]) for n in rounds},
        "load_avg_1min": loads,
    }


def transport_suite(batches: list[int], reps: int, side: int = 640) -> dict:
    return {str(b): measure(b, reps, side) for b in batches}
