"""Let long start-up work end at once when a stop is requested.

A download of ``init.from`` can take minutes; a spot notice gives two. The training command routes
SIGTERM/SIGINT to a stop request before start-up work begins, and a socket read or a lock wait restarts
after the handler ran, so without this the download would run to its end (then stop before the first
step). Inside :func:`stopping_on` (the command's start-up) a block wrapped in :func:`interruptible` is cut
short by a signal: the stop request is made as usual, then :class:`~app.errors.PreemptedBeforeStart` is
raised (exit 143, nothing trained, nothing saved). Only work that can be cut anywhere belongs in such a
block: a download into a ``.part`` file that the next run resumes, a wait for a lock.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from app.errors import PreemptedBeforeStart

__all__ = ["stopping_on", "interruptible"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Returns the stop reason when a stop was requested, else None; None outside a command's start-up.
_reason: Callable[[], str | None] | None = None


@contextlib.contextmanager
def stopping_on(reason: Callable[[], str | None]) -> Iterator[None]:
    """Within the block, :func:`interruptible` blocks end when ``reason()`` says a stop came."""
    global _reason  # noqa: PLW0603 - one start-up per process, set and reset here only
    previous, _reason = _reason, reason
    try:
        yield
    finally:
        _reason = previous


def _stop_if_requested(doing: str) -> None:
    why = _reason() if _reason is not None else None
    if why:
        raise PreemptedBeforeStart(f"{why}, while {doing}")


@contextlib.contextmanager
def interruptible(doing: str) -> Iterator[None]:
    """Run the block so that SIGTERM/SIGINT end it at once (after the usual handler ran), naming ``doing``.

    Outside :func:`stopping_on`, or off the main thread (where handlers cannot be set), a plain block.
    """
    if _reason is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    _stop_if_requested(doing)
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}

    def cut_short(signum: int, frame: FrameType | None) -> None:
        usual = previous[signum]
        if callable(usual):
            usual(signum, frame)
        raise PreemptedBeforeStart(f"signal {signal.Signals(signum).name}, while {doing}")

    for signum in _SIGNALS:
        signal.signal(signum, cut_short)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
