"""Stop requests: SIGTERM/SIGINT and spot notices all set one flag the loop checks after every step.

The loop then finishes the current step, saves synchronously within ``preempt.grace_seconds`` and exits
with :data:`app.errors.EXIT_PREEMPTED` (143), which Kubernetes and PaddleJob policies retry. A request
that arrives before the first step of this process (during start-up: imports, task build, loading the
checkpoint) ends the run at the first step boundary with exit 143 and nothing saved, since nothing new
was trained. A second Ctrl-C (SIGINT) interrupts immediately.

Once the ranks have agreed to stop (:meth:`StopRequest.agree`, from :func:`app.train.dist.stop_agreed`) no
rank waits for another's exit any more; :func:`agreed_stop` tells :mod:`app.train.rankexit` so.

Libraries may take the signals back (see :mod:`app.signals`); the sources of stop requests register a
check with :meth:`StopRequest.add_check`, and the loop runs :meth:`StopRequest.keep_sources` every step.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from app import signals

__all__ = ["StopRequest", "agreed_stop", "install_signal_handlers"]

log = logging.getLogger(__name__)

_agreed = threading.Event()  # set once in this process: every rank stops at the same step


def agreed_stop() -> bool:
    """Whether this process is stopping at a step every rank agreed on (so no rank waits for its exit)."""
    return _agreed.is_set()


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._checks: list[Callable[[], object]] = []

    def request(self, reason: str) -> None:
        if self._event.is_set():
            log.warning("already stopping (%s); also got: %s", self.reason, reason)
            return
        self.reason = reason
        self._event.set()
        log.warning("stop requested: %s; finishing the current step, then saving", reason)

    def agree(self) -> None:
        """Every rank stops at this step (the per-step agreement said so): none waits for another's exit."""
        _agreed.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def add_check(self, check: Callable[[], object]) -> None:
        """Run ``check`` at every step: it keeps one source of stop requests wired (signals, spot watcher)."""
        self._checks.append(check)

    def keep_sources(self) -> None:
        for check in self._checks:
            check()


def install_signal_handlers(stop: StopRequest) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``stop`` and keep them there (checked with the other sources every
    step); returns a function restoring the previous handlers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and stop.requested:
            raise KeyboardInterrupt
        stop.request(f"signal {signal.Signals(signum).name}")

    restore = signals.install(handler)
    stop.add_check(signals.check)
    return restore
