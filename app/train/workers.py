"""Data worker processes: each makes the numpy part of training batches (``task.train_arrays``) ahead of the
step and hands them to the trainer through shared memory (:mod:`app.train.shm`): the arrays are written
into one of the worker's slots, and the pipe carries only a small JSON header (:mod:`app.train.wire`).

Slots: each worker has ``prefetch + 1`` (its batches in flight plus the one the trainer is using). The
trainer names the slot in each job and gives it back only once the batch in it has been consumed (the next
``WorkerPool.next``), so a worker never writes over arrays the trainer still reads; ``to_batch`` makes
paddle tensors, which copy (``paddle.to_tensor`` copies on CPU, and to a GPU). Without ``memfd_create``
(not Linux), or when a slot cannot grow (memory limit), a batch's buffers go over the pipe instead.

Start method: ``os.fork`` of the trainer, so a worker inherits the built task (its records, tokenizer,
ppdet transforms) with no second import of paddle and no rebuild; a fork costs milliseconds where a spawned
worker would take seconds (paddle import plus task construction). This is safe because a worker runs
only the task's numpy code, never paddle, and ends with ``os._exit`` (no atexit handlers or buffered
streams of the trainer run twice). Workers are started before the first step, when the trainer has not
yet started its checkpoint-upload thread.

Order: batch ``k`` is sent to worker ``k % n`` and read back from it, so batches arrive in plan order
whatever each worker's speed. A worker ignores SIGINT and SIGTERM (a Ctrl-C or a group-wide SIGTERM
reaches the trainer, which saves and then ends its workers); it dies with the trainer through
``PR_SET_PDEATHSIG`` (SIGKILL) on Linux, and in any case leaves when its job pipe reaches EOF.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque
from multiprocessing.connection import Connection, Pipe
from typing import Any

from app.errors import AppError, TaskError
from app.train import shm, wire

__all__ = ["Worker", "start_worker", "MEMFD_PREFIX"]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
#: Shared-memory slots are named ``<prefix><trainer pid>-w<worker>-s<slot>`` (shown as ``/memfd:...`` in
#: ``/proc/<pid>/fd`` and ``maps``; in no file system).
MEMFD_PREFIX = "warmstart-batches-"
#: What the hint of every worker failure says.
WORKER_HINT = (
    "the run stopped, its committed checkpoints are intact; set train.data_workers=0 to make batches in "
    "the trainer process (a failing transform then shows its traceback), fix the cause, and run again"
)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the trainer dies (Linux); exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the job pipe's EOF still ends the worker
        pass
    if os.getppid() != parent:
        os._exit(0)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AppError):
        return exc.line()
    return f"{type(exc).__name__}: {exc}".strip()


def _reply(task: Any, job: dict[str, Any], slots: list[shm.Slot]) -> tuple[dict[str, Any], list[memoryview]]:
    """The header for the job's batch and the buffers still to send over the pipe (none when in a slot)."""
    tree = task.train_arrays(job["indices"], job["epoch"])
    if job.get("slot") is not None:
        try:
            return {**shm.encode_into(slots[job["slot"]], tree), "slot": job["slot"]}, []
        except OSError as exc:  # the slot could not grow (memory limit): this batch goes over the pipe
            log.debug("data worker: slot %s could not hold the batch (%s); using the pipe", job["slot"], exc)
    description, buffers = wire.encode(tree)
    return {"tree": description, "buffers": len(buffers)}, buffers


def _serve(task: Any, jobs: Connection, results: Connection, slots: list[shm.Slot]) -> None:
    while True:
        try:
            job = wire.loads(jobs.recv_bytes())
        except EOFError:  # the trainer closed the pool or died
            return
        try:
            header, buffers = _reply(task, job, slots)
        except BaseException as exc:  # noqa: BLE001  (reported to the trainer, which stops the run)
            results.send_bytes(wire.dumps({"error": _describe(exc)}))
            return
        results.send_bytes(wire.dumps(header))
        for buf in buffers:
            results.send_bytes(buf)


def _child(task: Any, jobs: Connection, results: Connection, slots: list[shm.Slot], others: list[Worker],
           closing: list[Connection], parent: int, mask: set[signal.Signals]) -> None:  # fmt: skip
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # blocked over the fork, ignored from here on
        _die_with_parent(parent)
        for conn in closing:  # the trainer's pipe ends: their EOFs must not wait on us
            conn.close()
        for other in others:  # other workers' pipes and memory are none of this one's business
            other.forget()
        cv2 = sys.modules.get("cv2")
        if cv2 is not None:
            cv2.setNumThreads(0)  # OpenCV's thread pool is not carried over a fork
        _serve(task, jobs, results, slots)
    except BaseException:  # noqa: BLE001  (a broken pipe while the trainer exits; the exit code tells)
        code = 1
    finally:
        os._exit(code)


class Worker:
    """The trainer's handle on one worker process: its pid, the two pipe ends and its shared-memory slots."""

    def __init__(
        self, index: int, pid: int, jobs: Connection, results: Connection, slots: list[shm.Slot]
    ) -> None:
        self.index, self.pid, self.jobs, self.results, self.slots = index, pid, jobs, results, slots
        self._free: deque[int] = deque(range(len(slots)))
        self._inflight: deque[int | None] = deque()
        self._held: int | None = None  # the slot of the batch the trainer is using
        self._status: int | None = None

    def send(self, epoch: int, indices: list[int]) -> None:
        if self.slots and not self._free:  # the pool sizes the ring so that this cannot happen
            raise RuntimeError(f"data worker {self.index}: no free shared-memory slot for the next batch")
        slot = self._free.popleft() if self.slots else None
        self._inflight.append(slot)
        try:
            self.jobs.send_bytes(wire.dumps({"epoch": epoch, "indices": indices, "slot": slot}))
        except OSError:  # it died: receive() reports how
            pass

    def release(self) -> None:
        """The trainer is done with the last batch it received from this worker: its slot may be reused."""
        if self._held is not None:
            self._free.append(self._held)
            self._held = None

    def receive(self, timeout: float, what: str) -> Any:
        """The next batch's arrays (read-only; in shared memory until :meth:`release`); a TaskError if the
        worker failed, died or took longer than ``timeout``."""
        if not self.results.poll(timeout):
            raise TaskError(
                f"data worker {self.index} (pid {self.pid}) made no batch in {timeout:.0f}s ({what})",
                hint="a transform may hang or be very slow; raise train.data_timeout_seconds, or "
                + WORKER_HINT,
            )
        try:
            header = wire.loads(self.results.recv_bytes())
            if "error" in header:
                raise TaskError(
                    f"data worker {self.index} failed making a batch ({what}): {header['error']}",
                    hint=WORKER_HINT,
                )
            buffers = [self.results.recv_bytes() for _ in range(header.get("buffers", 0))]
        except (EOFError, OSError):
            raise TaskError(
                f"data worker {self.index} (pid {self.pid}) {self.exit_status()} while making a batch ({what})",
                hint=WORKER_HINT,
            ) from None
        self._held = self._inflight.popleft()
        if "spans" in header:
            return shm.decode_from(self.slots[header["slot"]], header)
        return wire.decode(header["tree"], buffers)

    def exit_status(self) -> str:
        """How the process ended (waits for it up to 10 s)."""
        deadline = time.monotonic() + 10
        while self._status is None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    time.sleep(0.01)
                    continue
                self._status = status
            break
        if self._status is None:
            return "stopped answering"
        if os.WIFSIGNALED(self._status):
            return f"was killed by {signal.Signals(os.WTERMSIG(self._status)).name}"
        return f"exited with code {os.waitstatus_to_exitcode(self._status)}"

    def forget(self) -> None:
        """In another worker after the fork: close this worker's pipe ends and memory (no signal, no wait)."""
        for conn in (self.jobs, self.results):
            conn.close()
        for slot in self.slots:
            slot.close()

    def stop(self) -> None:
        """End the process (it holds no state), reap it and close its memory (freed once both are gone)."""
        for conn in (self.jobs, self.results):
            conn.close()
        if self._status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                _, self._status = os.waitpid(self.pid, 0)
        for slot in self.slots:
            slot.close()


def start_worker(index: int, task: Any, others: list[Worker], slots: int) -> Worker:
    """Fork one worker serving ``task.train_arrays`` with ``slots`` shared-memory slots (0: the pipe only);
    ``others``: the workers already started, whose pipes and memory the child closes."""
    parent = os.getpid()
    ring = [shm.Slot(f"{MEMFD_PREFIX}{parent}-w{index}-s{i}") for i in range(slots)]
    try:
        jobs_r, jobs_w = Pipe(duplex=False)
        results_r, results_w = Pipe(duplex=False)
    except BaseException:
        for slot in ring:
            slot.close()
        raise
    sys.stdout.flush()
    sys.stderr.flush()
    # A stop signal between the fork and the child's SIG_IGN would run the trainer's handler in the
    # child (exit 1, so the trainer would stop with 5 rather than 143/130): hold them over the fork.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    if pid == 0:  # the child unblocks them once it ignores them
        _child(task, jobs_r, results_w, ring, others, [jobs_w, results_r], parent, mask)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # in the trainer: a signal held meanwhile runs now
    jobs_r.close()
    results_w.close()
    return Worker(index, pid, jobs_w, results_r, ring)
