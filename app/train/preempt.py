"""Stop requests: SIGTERM/SIGINT and spot notices all set one flag the loop checks after every step.

The loop then finishes the current step, saves synchronously within ``preempt.grace_seconds`` and exits
with :data:`app.errors.EXIT_PREEMPTED` (143), which Kubernetes and PaddleJob policies retry.
A second Ctrl-C (SIGINT) interrupts immediately.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

__all__ = ["StopRequest", "install_signal_handlers"]

log = logging.getLogger(__name__)


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        if self._event.is_set():
            log.warning("already stopping (%s); also got: %s", self.reason, reason)
            return
        self.reason = reason
        self._event.set()
        log.warning("stop requested: %s; finishing the current step, then saving", reason)

    @property
    def requested(self) -> bool:
        return self._event.is_set()


def install_signal_handlers(stop: StopRequest) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``stop``; returns a function restoring the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and stop.requested:
            raise KeyboardInterrupt
        stop.request(f"signal {signal.Signals(signum).name}")

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
