"""``warmstart launch``: run several training processes with Paddle's launcher, keeping exit code 143.

Paddle 2.6's ``paddle.distributed.launch`` answers a SIGTERM aimed at itself by forwarding it and then
exiting with 15, which Kubeflow's ``restartPolicy: ExitCode`` treats as a permanent failure. This
supervisor starts the launcher as a child and, on SIGTERM/SIGINT, signals the *workers* directly: they
agree on a step, rank 0 commits, and every rank exits. A signal that comes before the workers can
handle it is kept and forwarded once they can. The ranks' exit codes reach the supervisor through
:mod:`app.train.rankexit` (a preempted rank exits 0 to the launcher, so that the launcher does not stop
the ranks still finishing), and the launch exits 143.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import psutil

from app import signals
from app.errors import ConfigError
from app.train import rankexit
from app.train.postmortem import lost_peer

__all__ = ["launch_command", "supervise"]

log = logging.getLogger(__name__)

#: How often the supervisor forwards pending signals and checks its own handlers while waiting.
POLL_S = 0.1


def _warmstart_script() -> str:
    found = shutil.which("warmstart")
    if found:
        return found
    return str(Path(__file__).resolve().parent.parent / "cli.py")


def launch_command(nproc: int, log_dir: str, args: Sequence[str]) -> list[str]:
    if nproc < 1:
        raise ConfigError(f"--nproc-per-node: must be >= 1, got {nproc}")
    return [
        sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
        "--log_dir", log_dir, _warmstart_script(), *args,
    ]  # fmt: skip


class _Forwarder:
    """Passes every SIGTERM/SIGINT the supervisor gets to each worker once that worker can take it.

    The handler only records the signal; :meth:`forward`, called from the wait loop, sends it. A worker
    that does not catch SIGTERM yet (a Python still starting) would die of it, so it gets the signals
    it missed as soon as it does (:func:`app.signals.catches_sigterm`); so does a worker the launcher
    starts after the signal came.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.sent: dict[int, int] = {}  # worker pid -> how many of ``received`` it was sent

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def forward(self, launcher: subprocess.Popen) -> None:
        if not self.received:
            return
        try:
            workers = psutil.Process(launcher.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        sent: dict[int, int] = {}
        for worker in workers:
            done = self.sent.get(worker.pid, 0)
            if done == len(self.received) or not signals.catches_sigterm(worker.pid):
                continue
            try:
                for signum in self.received[done:]:
                    worker.send_signal(signum)
            except psutil.NoSuchProcess:
                continue
            self.sent[worker.pid] = len(self.received)
            for signum in self.received[done:]:
                sent[signum] = sent.get(signum, 0) + 1
        for signum, count in sent.items():
            log.warning("%s: forwarded to %d worker process(es)", signal.Signals(signum).name, count)


def supervise(nproc: int, log_dir: str, args: Sequence[str]) -> int:
    """Run the launcher until it ends; returns the launch's exit code (143 after a stop).

    Our handler is in place before the launcher starts, so no signal meets the CLI's start-up handler
    while workers run; it stays until the CLI's ``main`` returns. The ranks record their exit codes in a
    folder of the log dir (:mod:`app.train.rankexit`), removed when the launcher has ended.
    """
    cmd = launch_command(nproc, log_dir, args)
    forwarder = _Forwarder()
    signals.install(forwarder.handler)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    status = tempfile.mkdtemp(prefix=".warmstart-exit-", dir=log_dir)
    try:
        code = _run_launcher(cmd, {**os.environ, rankexit.STATUS_ENV: status}, forwarder, nproc)
        ranks = rankexit.read(status)
    finally:
        shutil.rmtree(status, ignore_errors=True)
    return _outcome(code, ranks, nproc, log_dir, stopped=bool(forwarder.received))


def _run_launcher(cmd: list[str], env: dict[str, str], forwarder: _Forwarder, nproc: int) -> int:
    log.info("launching %d processes: %s", nproc, " ".join(cmd))
    # Its own session: a Ctrl-C in a terminal (SIGINT to the whole foreground process group) would
    # otherwise reach each worker three times (terminal, launcher, supervisor), and the second SIGINT
    # means "interrupt now, do not save". Now only the supervisor gets it, and forwards it once.
    launcher = subprocess.Popen(cmd, env=env, start_new_session=True)
    while True:
        try:
            return launcher.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            signals.check()
            forwarder.forward(launcher)


def _outcome(code: int, ranks: dict[int, int], nproc: int, log_dir: str, *, stopped: bool) -> int:
    """The launch's exit code from the launcher's ``code`` and the codes the ranks recorded."""
    for line in rankexit.describe(ranks, nproc):
        log.info("%s", line)
    final = rankexit.launch_code(code, ranks)
    if final != code:
        ended = rankexit.TEARDOWN_CODES.get(code)
        why = f" (a rank it ended with {ended})" if ended else " (preempted ranks exit 0 to it)"
        log.info(
            "the launcher exited %d%s; the launch exits %d, from what the ranks recorded", code, why, final
        )
    if stopped and final == 0:
        log.info("workers finished before the stop took effect")
    lost = lost_peer(final, log_dir)
    if lost is not None:  # a worker died of a peer's loss before its own watchdog could say so
        sys.stderr.write(lost.report() + "\n")
        return lost.exit_code
    return final
