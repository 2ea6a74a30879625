"""Where the loop's batches come from: made in the trainer (``train.data_workers: 0``) or by worker
processes ahead of the step (:mod:`app.train.workers`), the same batches either way.

The trainer's :class:`~app.train.data.DataStream` is the only position that counts: it advances when a
batch is *consumed*, so a checkpoint records consumed batches, never prefetched ones. The pool plans
ahead on a copy of the stream; batches it made but the trainer never used are dropped when it closes,
and a resumed run plans again from the restored position.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Any, Protocol

from app.errors import TaskError
from app.train import shm
from app.train.data import DataStream
from app.train.workers import Worker, start_worker

__all__ = [
    "BatchSource",
    "InProcess",
    "WorkerPool",
    "auto_workers",
    "resolve_workers",
    "open_batches",
    "MAX_AUTO_WORKERS",
]

log = logging.getLogger(__name__)

#: ``train.data_workers: null`` (auto) never starts more than this many workers per trainer process.
MAX_AUTO_WORKERS = 4


class BatchSource(Protocol):
    def next(self) -> Any:
        """The numpy arrays of the next micro-batch (the stream advances by one micro-batch)."""

    def close(self) -> None: ...


def auto_workers(cpus: int, local_processes: int) -> int:
    """The auto rule: the CPUs this trainer process may use (``cpus`` shared by ``local_processes``
    trainers on the machine), minus one for the trainer itself, at most :data:`MAX_AUTO_WORKERS`."""
    return max(0, min(MAX_AUTO_WORKERS, cpus // max(1, local_processes) - 1))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(configured: int | None, world: int) -> int:
    """``train.data_workers`` as given, or the auto rule; a count above the CPUs this trainer may use is
    kept (a toolkit config's ``num_workers: 8`` works as it does there) with a warning."""
    local = int(os.environ.get("PADDLE_LOCAL_SIZE", "") or world)
    cpus = _cpus()
    if configured is None:
        return auto_workers(cpus, local)
    share = max(1, cpus // max(1, local))
    if configured > share:
        log.warning(
            "train.data_workers %d is more than the %d CPU(s) this trainer may use (%d on the machine, %d "
            "trainer(s)): the workers and the step share them (auto would start %d)",
            configured, share, cpus, local, auto_workers(cpus, local),
        )  # fmt: skip
    return configured


class InProcess:
    """Batches made in the trainer, when asked for."""

    def __init__(self, task: Any, stream: DataStream) -> None:
        self.task, self.stream = task, stream

    def next(self) -> Any:
        epoch, indices = self.stream.next_batch()
        return self.task.train_arrays(indices, epoch)

    def close(self) -> None:
        pass


def _what(epoch: int, indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:4]) + (", ..." if len(indices) > 4 else "")
    return f"epoch {epoch}, sample indices [{shown}]"


class WorkerPool:
    """``workers`` processes, ``prefetch`` batches in flight each, consumed in plan order. ``transport``:
    ``"shm"`` (shared memory, where the system has it) or ``"pipe"`` (the arrays' bytes over the pipe)."""

    def __init__(
        self,
        task: Any,
        stream: DataStream,
        workers: int,
        prefetch: int,
        timeout: float,
        transport: str = "shm",
    ) -> None:
        self.stream, self.timeout = stream, timeout
        self._plan = stream.lookahead()
        self._pending: deque[tuple[int, list[int]]] = deque()
        self._received = 0
        self._held: Worker | None = None  # the worker whose slot holds the batch the trainer is using
        # a worker's batches in flight, plus the one the trainer holds while the next is asked for
        slots = prefetch + 1 if transport == "shm" and shm.available() else 0
        self.transport = "shm" if slots else "pipe"
        self.workers: list[Worker] = []
        try:
            for i in range(workers):
                self.workers.append(start_worker(i, task, list(self.workers), slots))
            for _ in range(workers * prefetch):
                self._send_next()
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def _send_next(self) -> None:
        epoch, indices = self._plan.next_batch()
        self.workers[(self._received + len(self._pending)) % len(self.workers)].send(epoch, indices)
        self._pending.append((epoch, indices))

    def next(self) -> Any:
        epoch, indices = self.stream.next_batch()
        planned = self._pending.popleft()
        if planned != (epoch, indices):  # the stream moved without the pool: a bug, not bad data
            raise TaskError(
                f"data workers made {_what(*planned)} but the trainer needs {_what(epoch, indices)}"
            )
        if self._held is not None:  # the previous batch was consumed (its step is done): free its slot
            self._held.release()
        worker = self.workers[self._received % len(self.workers)]
        arrays = worker.receive(self.timeout, _what(epoch, indices))
        self._held = worker
        self._received += 1
        self._send_next()
        return arrays

    def close(self) -> None:
        """Stop every worker; prefetched batches not yet consumed are dropped."""
        for w in self.workers:
            w.stop()
        self.workers = []


def open_batches(task: Any, stream: DataStream, train: Any, world: int) -> tuple[BatchSource, int]:
    """The run's batch source per ``train.data_workers`` / ``prefetch`` / ``data_timeout_seconds`` (a
    :class:`~app.config.schema.TrainConfig`), and its number of worker processes."""
    workers = resolve_workers(train.data_workers, world)
    if workers == 0:
        return InProcess(task, stream), 0
    return WorkerPool(task, stream, workers, train.prefetch, train.data_timeout_seconds), workers
