"""The lost-peer watchdog of a multi-process run: heartbeats on rank 0's TCP store, exit 142 on silence.

Without it a rank whose peer vanished either crashes with a traceback (gloo reports a dead peer as a
``RuntimeError``, exit 1, which PaddleJob's ``ExitCode`` policy treats as permanent) or hangs: warmstart's
store barrier (:func:`app.train.dist.barrier`) has no deadline, and after a cut link a blocked read on a
half-open TCP connection never returns. So every rank runs two daemon threads:

- the *heartbeat* thread, on its own connection to rank 0's store (``PADDLE_MASTER``), adds 1 to
  ``warmstart/alive/<rank>`` every :data:`HEARTBEAT_S` and reads every other rank's counter;
- the *monitor* thread decides: a peer whose counter has not moved for ``preempt.peer_timeout_seconds``
  is lost; so is rank 0 when its store refuses the connection or has not answered for that long.

On a verdict the monitor prints one line (``warmstart: peer-lost: rank 1 (198.18.0.12) ...``) and ends
the process with :data:`app.errors.EXIT_PEER_LOST` (142) at once: the main thread may be blocked inside
a C++ collective and cannot be interrupted. Nothing is saved (the other ranks' state is gone, so no step
after the last commit can be completed); an asynchronous save in flight stays uncommitted, and every
committed checkpoint is untouched. A verdict comes at most ``timeout + POLL_S + HEARTBEAT_S`` after the
last sign of life. When the training loop itself fails on a collective (a dead peer's connection reset),
:func:`confirm_lost` waits for the verdict rather than letting the traceback through.

Once a rank is leaving normally (after the final barrier, or the barrier after a preemption save) it
calls :func:`stop`, so the other ranks' exits are not mistaken for losses.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import EXIT_PEER_LOST, PeerLost
from app.train.dist import Dist

__all__ = ["HEARTBEAT_S", "POLL_S", "PeerWatch", "Verdict", "confirm_lost", "note_commit", "start", "stop"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0  #: how often each rank adds to its counter and reads the others'
POLL_S = 0.5  #: how often the monitor looks
#: A refused connection to rank 0's store is a verdict only if it lasts this long (rank 0 may just have
#: left normally a moment before this rank called :func:`stop`).
STORE_ERROR_GRACE_S = 2 * HEARTBEAT_S
#: After a collective has failed, this much silence is enough: the failure is the first sign, the silence
#: confirms it (a live peer keeps beating). Measured: a kill -9 of rank 1's host was named after ~21 s
#: with a 20 s timeout when rank 0's collective raised instead of aborting.
SUSPECT_S = 5 * HEARTBEAT_S

Connect = Callable[[str, int], Any]


@dataclass(frozen=True)
class Verdict:
    """Rank ``rank`` at ``host`` is lost, because ``why``."""

    rank: int
    host: str
    why: str


def _tcp_store(host: str, port: int) -> Any:  # noqa: ANN401  (paddle's TCPStore)
    from paddle.base import core

    return core.TCPStore(host, port, False, 0)  # world 0: a plain client, not counted as a worker


def _hosts(world: int) -> list[str]:
    eps = [e for e in os.environ.get("PADDLE_TRAINER_ENDPOINTS", "").split(",") if e]
    return [eps[r].rpartition(":")[0] if r < len(eps) else "?" for r in range(world)]


class PeerWatch:
    """Heartbeats and the verdict for one rank; see the module docstring."""

    def __init__(
        self, d: Dist, timeout_s: float, master: str, hosts: list[str], connect: Connect = _tcp_store
    ) -> None:
        self.d, self.timeout_s, self.master, self.hosts = d, timeout_s, master, hosts
        self._connect = connect
        now = time.monotonic()
        self._seen = {r: (-1, now) for r in range(d.world) if r != d.rank}  # rank -> (counter, when it moved)
        self._store_ok = now
        self._store_error: tuple[str, float] | None = None
        self._stopped = threading.Event()
        self._exit_lock = threading.Lock()
        self.committed: int | None = None
        self.exit: Callable[[int], None] = os._exit
        self._threads: list[threading.Thread] = []
        self.suspect = False  #: set when a collective failed: see SUSPECT_S

    def start(self) -> None:
        self._threads = [threading.Thread(target=t, name=n, daemon=True)
                         for t, n in ((self._beat, "warmstart-heartbeat"), (self._monitor, "warmstart-peer-watch"))]  # fmt: skip
        for t in self._threads:
            t.start()

    def stop(self, join_s: float = 3 * HEARTBEAT_S) -> None:
        """No more verdicts; wait up to ``join_s`` for the heartbeat thread to leave the store.

        A daemon thread still inside a store call when Python shuts down dies in C++ (pybind's GIL
        re-acquisition unwinds through ``noexcept``): ``terminate called without an active exception``,
        SIGABRT, and the launch reports 250 instead of 143 or 0 (measured). So stop() waits for it.
        """
        self._stopped.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(join_s)

    def _beat(self) -> None:
        host, _, port = self.master.rpartition(":")
        try:
            store = self._connect(host, int(port))
            while not self._stopped.is_set():
                store.add(f"warmstart/alive/{self.d.rank}", 1)
                now = time.monotonic()
                for r, (old, when) in list(self._seen.items()):
                    value = store.add(f"warmstart/alive/{r}", 0)
                    self._seen[r] = (value, now if value != old else when)
                self._store_ok = now
                self._stopped.wait(HEARTBEAT_S)
        except Exception as exc:  # Paddle raises RuntimeError/OSError variants when the store goes away
            self._store_error = (str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                                 time.monotonic())  # fmt: skip

    def check(self, now: float) -> Verdict | None:
        """The lost peer as of ``now`` (monotonic seconds), or None while every peer looks alive."""
        limit = min(self.timeout_s, SUSPECT_S) if self.suspect else self.timeout_s
        if self.d.rank != 0:
            err, silent = self._store_error, now - self._store_ok
            if err is not None and (now - err[1] >= STORE_ERROR_GRACE_S or silent > limit):
                why = f"its rendezvous store {self.master} closed the connection ({err[0]})"
                return Verdict(0, self.hosts[0], why)
            if silent > limit:
                why = f"its rendezvous store {self.master} did not answer for {now - self._store_ok:.0f} s"
                return Verdict(0, self.hosts[0], why)
        for r, (_, when) in sorted(self._seen.items()):
            if now - when > limit:
                first = "a collective failed, then " if self.suspect else ""
                return Verdict(r, self.hosts[r], f"{first}no heartbeat for {now - when:.0f} s")
        return None

    def message(self, v: Verdict) -> PeerLost:
        seen = (
            f" (the last save this rank saw: step-{self.committed:08d})" if self.committed is not None else ""
        )
        return PeerLost(
            f"rank {v.rank} ({v.host}) lost: {v.why} (preempt.peer_timeout_seconds={self.timeout_s:g}); "
            f"rank {self.d.rank} of {self.d.world} stops without saving",
            hint=f"run the launch on every node again: it resumes from the last committed checkpoint{seen}",
        )

    def _monitor(self) -> None:
        while not self._stopped.wait(POLL_S):
            verdict = self.check(time.monotonic())
            if verdict is not None:
                self._die(verdict)
                return

    def _die(self, v: Verdict) -> None:
        with self._exit_lock:
            if self._stopped.is_set():
                return
            sys.stderr.write(self.message(v).report() + "\n")
            sys.stderr.flush()
            self.exit(EXIT_PEER_LOST)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def wait(self, seconds: float) -> None:
        """Block up to ``seconds``; the monitor ends the process meanwhile if a peer is lost."""
        self._stopped.wait(seconds)


_watch: PeerWatch | None = None


def start(d: Dist, timeout_s: float) -> PeerWatch | None:
    """Start watching the other ranks (none when this is the only process)."""
    global _watch
    master = os.environ.get("PADDLE_MASTER", "")
    if d.world == 1 or not master:
        return None
    _watch = PeerWatch(d, timeout_s, master, _hosts(d.world))
    _watch.start()
    log.info("watching %d other rank(s): lost after %gs without a heartbeat", d.world - 1, timeout_s)
    return _watch


def stop() -> None:
    """This rank is leaving normally: the other ranks' exits from now on are not losses."""
    if _watch is not None:
        _watch.stop()


def note_commit(step: int) -> None:
    """The last step saved (committed, or being uploaded by an async save), named in the lost-peer line."""
    if _watch is not None:
        _watch.committed = step


def confirm_lost() -> None:
    """After a collective failed: give the monitor time to name the lost peer (it ends the process).

    A peer silent for :data:`SUSPECT_S` is now enough. Returns (and the caller re-raises the original
    error) if every peer still answers after a full timeout, i.e. the failure was not a lost peer.
    """
    if _watch is not None and not _watch.stopped:
        _watch.suspect = True
        log.warning(
            "a collective failed; checking whether another rank was lost (up to %gs)", _watch.timeout_s
        )
        _watch.wait(_watch.timeout_s + STORE_ERROR_GRACE_S + 2 * POLL_S + HEARTBEAT_S)
