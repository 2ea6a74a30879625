"""app/signals.py, the spot watcher's survival and the launch supervisor's forwarding, with real signals
sent to this process and to small child processes."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

import pytest

from app import signals
from app.train.preempt import StopRequest, install_signal_handlers
from app.train.spot import GcpProbe, SpotKeeper, SpotWatcher
from app.train.supervise import _Forwarder


@pytest.fixture
def caught() -> list[int]:
    return []


@pytest.fixture
def ours(caught: list[int]):
    """Our handler on SIGTERM/SIGINT for the test; the test process's own handlers come back after."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    restore = signals.install(handler)
    yield handler
    restore()


def _foreign(signum: int, _frame: FrameType | None) -> None:
    raise AssertionError("the foreign handler must not run")


def test_paddle_resetting_sigterm_is_invisible_to_getsignal_but_found_and_undone(ours, caught, caplog):
    import paddle

    paddle.disable_signal_handler()  # what `import paddlenlp` does: SIGTERM -> default action, natively
    assert signal.getsignal(signal.SIGTERM) is ours  # Python still believes it is ours
    assert signals.os_handler(signal.SIGTERM) == 0
    with caplog.at_level(logging.WARNING, logger="app.signals"):
        found = signals.check()
    assert found == ["SIGTERM: SIG_DFL (the default action: the process ends at once, nothing saved)"]
    assert "SIGTERM handler was replaced by SIG_DFL" in caplog.text
    os.kill(os.getpid(), signal.SIGTERM)  # would end the test run if the check had not re-installed ours
    assert caught == [signal.SIGTERM]
    assert signals.check() == []


def test_a_python_handler_put_over_ours_is_named_and_replaced(ours, caught):
    signal.signal(signal.SIGINT, _foreign)
    assert signals.check() == [f"SIGINT: Python handler {__name__}._foreign"]
    os.kill(os.getpid(), signal.SIGINT)
    assert caught == [signal.SIGINT]


#: A fresh process (a held block covers the threads started inside it: paddle starts two at import).
_HELD = """
import logging, os, signal, sys
log = logging.getLogger("app.signals")
log.addHandler(logging.StreamHandler(sys.stdout))
log.setLevel(logging.INFO)
import app
from app import signals
caught = []
signals.install(lambda signum, frame: caught.append(signum))
with signals.held("while testing"):
    import paddle
    paddle.disable_signal_handler()  # what `import paddlenlp` does
    os.kill(os.getpid(), signal.SIGTERM)
    print("pending", caught, flush=True)
print("caught", caught, flush=True)
"""


def test_a_signal_during_a_held_block_waits_for_our_handler():
    """The start-up transition: a library replaces the handler inside the block and a SIGTERM arrives
    right then; it is neither lost nor fatal, and reaches ours once the block ends."""
    done = subprocess.run([sys.executable, "-c", _HELD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "pending []",
        "SIGTERM handler was replaced while testing by SIG_DFL (the default action: the process ends at once, "
        "nothing saved); re-installed warmstart's",
        "caught [15]",
    ]


#: SIGINT sent the moment the SIGTERM handler is in place, while install() is still routing the others.
_MID_INSTALL = """
import os, signal, sys
import app
from app import signals
real = signals._route
def route(sig, handler):
    real(sig, handler)
    if sig == signal.SIGTERM:
        os.kill(os.getpid(), signal.SIGINT)
signals._route = route
caught = []
signals.install(lambda signum, frame: caught.append(signum))
print("caught", caught, flush=True)
"""


def test_a_signal_while_the_handlers_are_being_installed_reaches_ours():
    """Both handlers change as one: a SIGINT in between waits for ours instead of finding Python's
    default (a KeyboardInterrupt traceback and death by SIGINT, seen once in a loaded suite run)."""
    done = subprocess.run([sys.executable, "-c", _MID_INSTALL], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.splitlines()) == (0, ["caught [2]"]), done.stderr[-2000:]


def test_stop_request_checks_its_sources_every_step():
    import paddle

    stop = StopRequest()
    restore = install_signal_handlers(stop)
    try:
        paddle.disable_signal_handler()
        stop.keep_sources()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.reason == "signal SIGTERM"
    finally:
        restore()


def _garbled_then(answer: bytes, garbled: int) -> tuple[socket.socket, threading.Thread]:
    """A metadata endpoint whose first ``garbled`` answers are not HTTP, then a proper ``answer``."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for i in range(garbled + 50):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                if i < garbled:
                    conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_spot_watcher_survives_a_garbled_answer_and_still_sees_the_notice(caplog):
    server, _ = _garbled_then(b"TRUE", garbled=2)
    try:
        notices: list[str] = []
        done = threading.Event()
        probe = GcpProbe(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=5)
        watcher = SpotWatcher(probe, 0.01, lambda r: (notices.append(r), done.set()))
        with caplog.at_level(logging.WARNING, logger="app.train.spot"):
            watcher.start()
            assert done.wait(60), "the watcher died on a garbled answer"
        watcher.stop()
    finally:
        server.close()
    assert notices == ["GCP instance preempted (metadata instance/preempted = TRUE)"]
    assert "answered unreadably (BadStatusLine" in caplog.text
    assert watcher.polls == 3


def test_spot_keeper_restarts_an_ended_watcher_wired_to_the_stop_request(caplog):
    server, _ = _garbled_then(b"TRUE", garbled=0)
    try:
        stop = StopRequest()
        probe = GcpProbe(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=5)
        ended = SpotWatcher(probe, 0.01, lambda r: None)  # never started: ended without a notice, miswired
        keeper = SpotKeeper(ended, stop.request)
        with caplog.at_level(logging.WARNING, logger="app.train.spot"):
            keeper.check()
        assert keeper.restarts == 1 and keeper.watcher is not ended
        keeper.watcher.join(60)
        keeper.check()  # it fired and stopped: nothing to restart
        assert keeper.restarts == 1
    finally:
        server.close()
    assert stop.requested and stop.reason.startswith("GCP instance preempted")
    assert "no longer wired to the stop request" in caplog.text


#: A "worker": a Python that starts slowly (as a real one importing paddle does), then catches SIGTERM.
_WORKER = """
import signal, sys, time
time.sleep(1.0)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
time.sleep(120)
sys.exit(0)
"""
#: A "launcher": starts the worker and exits with its code.
_LAUNCHER = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {_WORKER!r}]))"


def test_forwarder_holds_a_signal_until_the_worker_catches_sigterm():
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER])
    try:
        forwarder = _Forwarder()
        forwarder.handler(signal.SIGTERM, None)  # the supervisor got SIGTERM before the worker existed
        deadline = time.monotonic() + 60
        while launcher.poll() is None and time.monotonic() < deadline:
            forwarder.forward(launcher)
            time.sleep(0.01)
        assert launcher.wait(timeout=60) == 143  # not -15: the worker was not signalled while starting
        assert list(forwarder.sent.values()) == [1]
    finally:
        launcher.kill()


def test_catches_sigterm_reads_the_process_status():
    assert signals.catches_sigterm(os.getpid()) == (signals.os_handler(signal.SIGTERM) not in (0, 1))
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline() == b"up\n"  # running Python, no SIGTERM handler
        assert signals.catches_sigterm(child.pid) is False
    finally:
        child.kill()
        child.wait()


def test_a_signal_while_paddle_waits_on_its_tcp_store_does_not_break_the_wait():
    """Ranks wait at barriers on Paddle's TCP store (C++): a SIGTERM then must not fail the wait with
    "Interrupted system call" (our handlers restart system calls); the handler still runs."""
    from paddle.base import core  # before our handler: importing paddle installs glog's

    caught: list[int] = []
    restore = signals.install(lambda signum, _frame: caught.append(signum))
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = core.TCPStore("127.0.0.1", port, True, 1, 60)

        def signal_then_set() -> None:
            time.sleep(0.5)  # let the main thread block in get()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
            store.set("key", b"value")

        threading.Thread(target=signal_then_set, daemon=True).start()
        assert store.get("key") == b"value"
        assert caught == [signal.SIGTERM]
    finally:
        restore()
