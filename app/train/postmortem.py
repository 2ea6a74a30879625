"""Why a launch ended badly: a worker that died of a lost peer is reported as one, with exit 142.

The lost-peer watchdog (:mod:`app.train.peers`) runs inside each worker, but gloo does not always let a
worker reach it: when a peer's connection resets in the middle of a collective, gloo sometimes throws
from a place where C++ cannot unwind, and the worker dies of ``std::terminate`` (SIGABRT; measured on
Paddle 2.6.2: the launcher reports -6 and exits 250), or the collective raises a ``RuntimeError`` first.
Either way the worker's log ends with gloo's own account, which names the peer's address
(``pair.cc:576] Read error [198.18.0.12]:25236: Connection reset by peer``). The launch supervisor reads
it after the launcher has ended with a code that no warmstart path produces, and turns it into the same
one line and exit code as the watchdog's.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from app.errors import (
    EXIT_CHECKPOINT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PEER_LOST,
    EXIT_PREEMPTED,
    EXIT_STORAGE,
    EXIT_TASK,
    EXIT_USAGE,
    PeerLost,
)

__all__ = ["lost_peer"]

log = logging.getLogger(__name__)

#: Exit codes with a meaning of their own: left as they are.
KNOWN = frozenset({EXIT_OK, EXIT_USAGE, EXIT_STORAGE, EXIT_CHECKPOINT, EXIT_TASK, EXIT_INTERRUPTED,
                   EXIT_PEER_LOST, EXIT_PREEMPTED})  # fmt: skip
_GLOO = re.compile(r"gloo/transport/tcp/pair\.cc:\d+\] (?P<what>.*)")
_PEER = re.compile(r"\[(?P<ip>[0-9A-Fa-f.:]+)\]:\d+")
#: What :func:`app.train.dist.init_dist` logs when a worker has joined (the start of this run's part of a log).
JOINED = "joined the process group"
TAIL_BYTES = 64 * 1024  #: how much of the end of each worker log is read


def _tail(path: Path) -> str:
    with path.open("rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - TAIL_BYTES))
        return f.read().decode("utf-8", errors="replace")


def _gloo_error(log_dir: Path) -> str | None:
    """The last gloo connection error any worker of this host logged."""
    found = None
    for path in sorted(log_dir.glob("workerlog.*")):
        text = _tail(path)
        text = text[text.rfind(JOINED) :] if JOINED in text else text  # the launcher appends: this run only
        for line in text.splitlines():
            m = _GLOO.search(line)
            if m and _PEER.search(m["what"]):
                found = m["what"].strip()
    return found


def _ranks_at(log_dir: Path, ip: str) -> list[int]:
    """The global ranks whose endpoint is at ``ip`` (from the launcher's ``backup_env.*.json``)."""
    for path in sorted(log_dir.glob("backup_env.*.json")):
        try:
            endpoints = json.loads(path.read_text()).get("PADDLE_TRAINER_ENDPOINTS", "")
        except (OSError, ValueError, AttributeError):
            continue
        ranks = [r for r, ep in enumerate(endpoints.split(",")) if ep.rpartition(":")[0] == ip]
        if ranks:
            return ranks
    return []


def lost_peer(code: int, log_dir: str | Path) -> PeerLost | None:
    """The lost-peer error to report for a launch that ended with ``code``, or None if it was not one."""
    if code in KNOWN:
        return None
    what = _gloo_error(Path(log_dir))
    if what is None:
        return None
    ip = _PEER.search(what)["ip"]  # type: ignore[index]  (_gloo_error only returns lines with a peer)
    ranks = _ranks_at(Path(log_dir), ip)
    who = f"rank {', '.join(map(str, ranks))}" if ranks else "a peer"
    return PeerLost(
        f"{who} ({ip}) lost: gloo reported {what!r}; this node's worker ended with code {code}",
        hint="run the launch on every node again: it resumes from the last committed checkpoint",
    )
