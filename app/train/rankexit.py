"""How the ranks of a ``warmstart launch`` end, so that none is stopped for finishing later than another.

Paddle 2.6's launcher (``paddle.distributed.launch``, ``elastic_level -1``) watches its ranks. As soon as
one exits non-zero it sends SIGTERM to the others' process groups (3 times, 0.2 s apart), SIGKILLs what
is left 3 s later, and exits with the first non-zero code in rank order, a death by a signal as 256 minus
the signal: -15 (SIGTERM) becomes 241, -9 (SIGKILL) 247, -6 (SIGABRT) 250. A preemption exit is 143 and
the ranks never finish at the same instant: the first one out used to bring that teardown onto the
others while they still joined their data workers, waited for an upload or shut their interpreter down,
and the launch ended 241 or 247 (measured: 1 in 6 loaded runs; tests/test_launch_exit.py makes it certain).

So the supervisor gives the launcher a folder for exit statuses (:data:`STATUS_ENV`). A rank records
its exit code there (:func:`report`) and, when the code is a preemption every rank agreed on
(:func:`app.train.preempt.agreed_stop`: from then on no rank waits for another), exits **0** to the
launcher, which then simply waits for the other ranks, whatever they are doing and however long. Any other
code goes to the launcher as it is: a failing rank (or one stopped during start-up, whose peers may wait
for it) must still bring the others down. The supervisor then decides the launch's code
(:func:`launch_code`). Without the variable (the bare launcher) ranks exit with their own codes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from app.errors import EXIT_OK, EXIT_PREEMPTED

__all__ = ["STATUS_ENV", "TEARDOWN_CODES", "describe", "launch_code", "read", "report"]

log = logging.getLogger(__name__)

#: The folder the supervisor gives its launcher; each rank writes ``rank-<global rank>`` with its code.
STATUS_ENV = "WARMSTART_LAUNCH_STATUS_DIR"

#: The launcher's code when the first failing rank in rank order died of the launcher's own teardown.
TEARDOWN_CODES = {256 - signal.SIGTERM: "SIGTERM", 256 - signal.SIGKILL: "SIGKILL"}


def report(code: int) -> int:
    """Record this rank's exit ``code`` for the supervisor; returns the code to exit with (0 for an agreed
    preemption under ``warmstart launch``, else ``code``)."""
    folder, rank = os.environ.get(STATUS_ENV), os.environ.get("PADDLE_TRAINER_ID")
    if not folder or rank is None:
        return code
    path = Path(folder) / f"rank-{rank}"
    try:
        part = path.with_name(f".{path.name}.part")
        part.write_text(f"{code}\n", encoding="ascii")
        part.replace(path)
    except OSError as exc:  # the launcher then sees the real code: the old behaviour, not a failure
        log.warning("could not record the exit code for warmstart launch in %s: %s", folder, exc)
        return code
    from app.train.preempt import agreed_stop

    return EXIT_OK if code == EXIT_PREEMPTED and agreed_stop() else code


def read(folder: str | Path) -> dict[int, int]:
    """The exit codes the ranks recorded in ``folder``: {global rank: code}."""
    found = {}
    for path in Path(folder).glob("rank-*"):
        with contextlib.suppress(OSError, ValueError):
            found[int(path.name.split("-", 1)[1])] = int(path.read_text(encoding="ascii"))
    return found


def launch_code(launcher: int, ranks: dict[int, int]) -> int:
    """The exit code of a launch whose launcher ended with ``launcher`` and whose ranks recorded ``ranks``.

    - 0 from the launcher: 143 if a rank recorded a preemption (it exited 0 so the others could finish), else 0;
    - 241/247 (the first rank in rank order was ended by the launcher's SIGTERM/SIGKILL): the code of the
      first rank that recorded a failure (the reason the launcher stopped the others), else 143 if a rank
      recorded one (a rank stopped during start-up, where its peers may wait for it, exits 143 to the
      launcher, which then stops them: nothing had been trained, nothing is lost, the job is retried);
    - anything else: the launcher's code (a rank's own failure, or a death nobody recorded a reason for).
    """
    if launcher not in (EXIT_OK, *TEARDOWN_CODES):
        return launcher
    failed = [code for _, code in sorted(ranks.items()) if code not in (EXIT_OK, EXIT_PREEMPTED)]
    if failed and launcher != EXIT_OK:
        return failed[0]
    return EXIT_PREEMPTED if EXIT_PREEMPTED in ranks.values() else launcher


def describe(ranks: dict[int, int], local: int) -> list[str]:
    """What this node's ``local`` ranks recorded: one line per rank, and how many recorded nothing."""
    lines = [f"rank {rank} exited {code}" for rank, code in sorted(ranks.items())]
    missing = local - len(ranks)
    if missing > 0:
        lines.append(f"{missing} rank(s) recorded no exit code (ended by a signal before exiting)")
    return lines
