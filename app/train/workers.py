"""Data worker processes: each makes the numpy part of training batches (``task.train_arrays``) ahead of the
step and hands them to the trainer as raw numpy buffers over a pipe (:mod:`app.train.wire`).

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
from multiprocessing.connection import Connection, Pipe
from typing import Any

from app.errors import AppError, TaskError
from app.train import wire

__all__ = ["Worker", "start_worker"]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
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


def _serve(task: Any, jobs: Connection, results: Connection) -> None:
    while True:
        try:
            job = wire.loads(jobs.recv_bytes())
        except EOFError:  # the trainer closed the pool or died
            return
        try:
            description, buffers = wire.encode(task.train_arrays(job["indices"], job["epoch"]))
        except BaseException as exc:  # noqa: BLE001  (reported to the trainer, which stops the run)
            results.send_bytes(wire.dumps({"error": _describe(exc)}))
            return
        results.send_bytes(wire.dumps({"tree": description, "buffers": len(buffers)}))
        for buf in buffers:
            results.send_bytes(buf)


def _child(task: Any, jobs: Connection, results: Connection, foreign: list[Connection], parent: int) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _die_with_parent(parent)
        for conn in foreign:  # other workers' and the trainer's pipe ends: their EOFs must not wait on us
            conn.close()
        cv2 = sys.modules.get("cv2")
        if cv2 is not None:
            cv2.setNumThreads(0)  # OpenCV's thread pool is not carried over a fork
        _serve(task, jobs, results)
    except BaseException:  # noqa: BLE001  (a broken pipe while the trainer exits; the exit code tells)
        code = 1
    finally:
        os._exit(code)


class Worker:
    """The trainer's handle on one worker process: its pid and the two pipe ends."""

    def __init__(self, index: int, pid: int, jobs: Connection, results: Connection) -> None:
        self.index, self.pid, self.jobs, self.results = index, pid, jobs, results
        self._status: int | None = None

    def send(self, epoch: int, indices: list[int]) -> None:
        try:
            self.jobs.send_bytes(wire.dumps({"epoch": epoch, "indices": indices}))
        except OSError:  # it died: receive() reports how
            pass

    def receive(self, timeout: float, what: str) -> Any:
        """The next batch's arrays; a TaskError if the worker failed, died or took longer than ``timeout``."""
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
            buffers = [self.results.recv_bytes() for _ in range(header["buffers"])]
        except (EOFError, OSError):
            raise TaskError(
                f"data worker {self.index} (pid {self.pid}) {self.exit_status()} while making a batch ({what})",
                hint=WORKER_HINT,
            ) from None
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

    def stop(self) -> None:
        """End the process (it holds no state) and reap it."""
        for conn in (self.jobs, self.results):
            conn.close()
        if self._status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                _, self._status = os.waitpid(self.pid, 0)


def start_worker(index: int, task: Any, foreign: list[Connection]) -> Worker:
    """Fork one worker serving ``task.train_arrays``; ``foreign``: pipe ends the child must close."""
    jobs_r, jobs_w = Pipe(duplex=False)
    results_r, results_w = Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(task, jobs_r, results_w, [*foreign, jobs_w, results_r], parent)
    jobs_r.close()
    results_w.close()
    return Worker(index, pid, jobs_w, results_r)
