"""Who handles SIGTERM and SIGINT, and keeping it so while libraries try to take them.

Libraries change signal handling behind Python's back: ``import paddle`` installs glog's C++ failure
handler for SIGTERM (it prints a C++ traceback and ends the process), and ``import paddlenlp`` calls
``paddle.disable_signal_handler()``, which sets SIGTERM back to the default action (the process dies at
once). ``signal.getsignal`` sees neither: it returns what Python itself last installed. So this module
also reads the operating system's disposition with ``sigaction(2)`` and compares it with what it was
right after our own ``signal.signal`` call.

- :func:`install` routes SIGTERM and SIGINT to one handler (the CLI's start-up handler first, then the
  training command's stop request, or the launch supervisor's forwarder) and returns a restore function.
- :func:`held` holds both signals while a block runs (imports, task and model builds): a signal that
  arrives meanwhile stays pending instead of meeting a library's handler, and reaches ours, re-installed
  first, when the block ends. Threads started inside the block inherit the hold.
- :func:`check` verifies that both signals still reach our handler, re-installs it where a library
  replaced it and logs which signal and what had replaced it. The training loop calls it every step.
- :func:`leaving` is the CLI's last act when ``main`` returns to exit the process: both signals are ignored
  from then on, so a late one (Paddle's launcher stops the ranks still running as soon as one exits)
  can neither kill the process nor change its exit code.
- :func:`startup_handler` is the CLI's first act: a signal before the command has its own handler ends
  the process with :class:`StartupSignal` (a clean one-line exit 143) instead of death by signal.

Python runs signal handlers in the main thread only, so everything here is a no-op in other threads.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = [
    "SIGNALS",
    "StartupSignal",
    "catches_sigterm",
    "check",
    "held",
    "install",
    "leaving",
    "os_handler",
    "startup_handler",
]

log = logging.getLogger(__name__)

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any]

_SIG_DFL, _SIG_IGN = 0, 1
_SIGACTION_SIZE = 512  # larger than struct sigaction on every libc; the handler is its first member


class StartupSignal(BaseException):
    """SIGTERM/SIGINT before the command installed its own handler.

    A BaseException, like KeyboardInterrupt, so that a library's ``except Exception`` cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


def startup_handler(signum: int, _frame: FrameType | None) -> None:
    raise StartupSignal(signum)


@dataclass
class _Routing:
    handler: Handler | None = None
    native: dict[int, int | None] = field(default_factory=dict)  # the OS handler right after installing


_routing = _Routing()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _Libc:
    """``sigaction`` and ``dladdr`` through ctypes; ``ok`` is False where they cannot be reached."""

    def __init__(self) -> None:
        try:
            self.lib: Any = ctypes.CDLL(None, use_errno=True)
            self.ok = hasattr(self.lib, "sigaction")
        except OSError:
            self.lib, self.ok = None, False
        self.buf = ctypes.create_string_buffer(_SIGACTION_SIZE)  # reused: read in the main thread, per step


_libc: _Libc | None = None


def _get_libc() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def os_handler(sig: int) -> int | None:
    """The address of the handler the OS runs for ``sig`` (0 = default action, 1 = ignored); None if
    it cannot be read here."""
    libc = _get_libc()
    if not libc.ok:
        return None
    buf = libc.buf if _main_thread() else ctypes.create_string_buffer(_SIGACTION_SIZE)
    if libc.lib.sigaction(int(sig), None, buf) != 0:
        return None
    return ctypes.c_size_t.from_buffer(buf).value


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _native_owner(address: int) -> str:
    libc = _get_libc()
    info = _DlInfo()
    try:
        found = libc.lib.dladdr(ctypes.c_void_p(address), ctypes.byref(info))
    except AttributeError:
        found = 0
    if found and info.dli_fname:
        return info.dli_fname.decode(errors="replace").rsplit("/", 1)[-1]
    return f"{address:#x}"


def _describe_native(address: int) -> str:
    if address == _SIG_DFL:
        return "SIG_DFL (the default action: the process ends at once, nothing saved)"
    if address == _SIG_IGN:
        return "SIG_IGN (ignored)"
    return f"a native handler in {_native_owner(address)}"


def _describe_python(handler: object) -> str:
    if handler is None:
        return "a handler installed outside Python"
    if handler in (signal.SIG_DFL, signal.SIG_IGN):
        return signal.Handlers(handler).name
    module = getattr(handler, "__module__", None) or "?"
    return f"Python handler {module}.{getattr(handler, '__qualname__', repr(handler))}"


def _route(sig: int, handler: Handler) -> None:
    signal.signal(sig, handler)
    # Restart interrupted system calls (SA_RESTART): Python's own calls retry EINTR anyway (PEP 475),
    # but C++ ones do not. Paddle's TCP store raised "TCP receive error ... Interrupted system call" when
    # a SIGTERM came while a rank waited at a barrier; our handler still runs once Python code resumes.
    signal.siginterrupt(sig, False)
    _routing.native[sig] = os_handler(sig)


def _set(handler: Handler) -> None:
    """Route every signal of :data:`SIGNALS` to ``handler`` at once: they are blocked while the handlers
    change, so one that arrives meanwhile is delivered after, to the new handler (a SIGINT sent as soon as
    the SIGTERM handler was in place used to find Python's default one and end in a KeyboardInterrupt)."""
    _routing.handler = handler
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        for sig in SIGNALS:
            _route(sig, handler)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def install(handler: Handler) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``handler``; returns a function restoring the previous handlers."""
    if not _main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    previous_handler = _routing.handler
    _set(handler)

    def restore() -> None:
        if not _main_thread():
            return
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        _routing.handler = previous_handler
        _routing.native.update({sig: os_handler(sig) for sig in SIGNALS})

    return restore


def leaving() -> None:
    """This process is on its way out with its exit code decided: ignore SIGTERM and SIGINT until it ends.

    A Python handler runs only while Python code does, and interpreter shutdown puts the default action
    back before the process ends (the process would then die of the signal, 143 becoming -15); an
    ignored signal stays ignored to the very end. What is left after this is interpreter shutdown, which
    a ``kill -9`` still ends. A no-op outside the main thread.
    """
    if not _main_thread():
        return
    _routing.handler = None  # nothing to keep in place any more (see check)
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
        _routing.native[sig] = os_handler(sig)


def _replaced_by(sig: int, handler: Handler) -> str | None:
    current = signal.getsignal(sig)
    if current is not handler:
        return _describe_python(current)
    native, expected = os_handler(sig), _routing.native.get(sig)
    if native is not None and expected is not None and native != expected:
        return _describe_native(native)
    return None


def check(level: int = logging.WARNING, during: str = "") -> list[str]:
    """Re-install our handler for every signal a library replaced; returns ``"SIGTERM: <by what>"`` items.

    ``level``: how to log a replacement (WARNING while training; start-up blocks pass INFO, since
    libraries are known to do this at import time). ``during`` names the block for the log line.
    """
    handler = _routing.handler
    if handler is None or not _main_thread():
        return []
    found = []
    for sig in SIGNALS:
        by = _replaced_by(sig, handler)
        if by is None:
            continue
        _route(sig, handler)
        name = signal.Signals(sig).name
        where = f" {during}" if during else ""
        log.log(level, "%s handler was replaced%s by %s; re-installed warmstart's", name, where, by)
        found.append(f"{name}: {by}")
    return found


@contextmanager
def held(during: str = "") -> Iterator[None]:
    """Hold SIGTERM/SIGINT in this thread while the block runs; then re-install our handler (where a
    library replaced it) and release them, so a signal that arrived meanwhile reaches our handler.

    Do not start subprocesses inside: they would inherit the hold.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to hold
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        check(logging.INFO, during)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a pending signal is handled here


def catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a SIGTERM handler installed (Linux ``/proc``; True where unknown).

    A process that does not catch SIGTERM yet (a Python still starting, before ``warmstart``'s first
    line) would die of it, so the launch supervisor waits until this is true before forwarding a stop.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except (OSError, ValueError, IndexError):
        return True
    return True
