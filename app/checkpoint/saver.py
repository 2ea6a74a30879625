"""The background save worker: at most one checkpoint in flight, failures re-raised on the next call.

The training thread hands over a :class:`PreparedSave` and returns. A single worker thread serializes,
hashes, writes and commits it (see :mod:`app.checkpoint.writer`), then runs the after-commit hook
(retention). A second hand-over while one is in flight waits for it, and the wait is logged with its
duration. A failure (after the store's own retries) is kept and raised by the next ``submit``, ``wait``
or ``check`` — once — so a run never trains on for long without a safe copy; the staged files stay on
disk and their path is logged.

The worker thread runs at a lower CPU priority than training (:func:`lower_thread_priority`): on Linux
each thread has its own nice value, so ``setpriority`` on the thread's native id lowers only the save
work (serializing, hashing, fsync, upload threads it starts, which inherit it) and never the training
thread. Elsewhere the call is skipped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from app.checkpoint.layout import CheckpointRef, step_key
from app.checkpoint.writer import PreparedSave, staging_path
from app.errors import AppError, CheckpointError

__all__ = ["SaveWorker", "THREAD_PREFIX", "SAVE_NICE", "lower_thread_priority"]

log = logging.getLogger(__name__)

#: Name prefix of the save worker's thread (the CLI looks for it to know a save is still running).
THREAD_PREFIX = "ckpt-save"
#: How long the training thread blocks at a time while it waits for a save (signals run in between).
_WAIT_SLICE_S = 0.2
#: How much the save thread's nice value is raised (capped at 19, the lowest priority): the save then
#: takes CPU the training step leaves idle instead of sharing a core with it half and half.
SAVE_NICE = 10

Job = Callable[[PreparedSave], CheckpointRef]


class SaveWorker:
    """Runs save jobs one at a time on a background thread (or inline when ``background`` is False)."""

    def __init__(self, job: Job, *, background: bool, kept_at: Callable[[int], Path]) -> None:
        self._job = job
        self._kept_at = kept_at
        self._pool = (
            ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=THREAD_PREFIX, initializer=lower_thread_priority
            )
            if background
            else None
        )
        self._future: Future[CheckpointRef] | None = None
        self._step: int | None = None
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int | None:
        """The step being saved right now, or None."""
        future = self._future
        return self._step if future is not None and not future.done() else None

    def submit(self, prepared: PreparedSave) -> CheckpointRef | None:
        """Hand ``prepared`` over. Waits for (and raises the failure of) the previous save first."""
        with self._lock:
            self._wait_previous(prepared.step)
            if self._pool is None:
                self._step = prepared.step
                return self._run(prepared)
            self._step = prepared.step
            self._future = self._pool.submit(self._run, prepared)
            return None

    def wait(self) -> CheckpointRef | None:
        """Block until nothing is in flight; raise the failure of the last save, if any."""
        with self._lock:
            return self._collect()

    def check(self) -> None:
        """Raise the failure of a finished save, without waiting for one still running."""
        with self._lock:
            if self._future is not None and self._future.done():
                self._collect()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _wait_previous(self, next_step: int) -> None:
        future = self._future
        if future is not None and not future.done():
            log.info("checkpoint step %d waits for step %d, still being saved", next_step, self._step)
            started = time.monotonic()
            self._collect()
            log.info(
                "waited %.2f s for checkpoint step %d to finish saving",
                time.monotonic() - started,
                self._step,
            )
        else:
            self._collect()

    def _collect(self) -> CheckpointRef | None:
        future, self._future = self._future, None
        if future is None:
            return None
        # Wait in slices: our signal handlers restart interrupted system calls (app/signals.py), so an
        # untimed wait would keep Python from running a handler (a second Ctrl-C) until the save ends.
        while True:
            try:
                return future.result(timeout=_WAIT_SLICE_S)  # re-raises the worker's error, once
            except FutureTimeout:
                continue
            except BaseException:
                if not future.done():  # interrupted (e.g. KeyboardInterrupt): the save is still ours
                    self._future = future
                raise

    def _run(self, prepared: PreparedSave) -> CheckpointRef:
        try:
            return self._job(prepared)
        except AppError as exc:
            self._log_failure(prepared.step, exc)
            raise
        except Exception as exc:  # noqa: BLE001  (an unexpected failure must still fail the run loudly)
            self._log_failure(prepared.step, exc)
            raise CheckpointError(f"saving checkpoint step {prepared.step} failed: {exc!r}") from exc
        finally:
            if prepared.release is not None:
                prepared.release()

    def _log_failure(self, step: int, exc: BaseException) -> None:
        log.error(
            "saving checkpoint %s failed: %s; its files are kept at %s; the next save/flush will raise",
            step_key(step),
            exc,
            self._kept_at(step),
        )


def lower_thread_priority(increment: int | None = None) -> int | None:
    """Raise the calling thread's nice value by ``increment`` (default :data:`SAVE_NICE`); its new value.

    Linux only (threads there are scheduled as tasks with their own nice value); None elsewhere or when
    the system refuses. Lowering a priority needs no privilege; it cannot be raised back without one, so
    call it only on a thread that does nothing but background work.
    """
    increment = SAVE_NICE if increment is None else increment
    if not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        value = min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        os.setpriority(os.PRIO_PROCESS, tid, value)
    except OSError as exc:
        log.debug("could not lower the priority of thread %d: %s", tid, exc)
        return None
    log.debug("thread %d (%s) runs at nice %d", tid, threading.current_thread().name, value)
    return value


def default_kept_at(
    store_is_local: bool, store_describe: Callable[[str], str], staging_dir: Path
) -> Callable[[int], Path | str]:
    """Where a failed save's files stay: the step folder itself for a local store, else staging."""
    if store_is_local:
        return lambda step: store_describe(step_key(step))
    return lambda step: staging_path(staging_dir, step)
