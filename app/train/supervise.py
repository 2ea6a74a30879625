"""``warmstart launch``: run several training processes with Paddle's launcher, keeping exit code 143.

Paddle 2.6's ``paddle.distributed.launch`` answers a SIGTERM aimed at itself by forwarding it and then
exiting with 15, which Kubeflow's ``restartPolicy: ExitCode`` treats as a permanent failure. This
supervisor starts the launcher as a child and, on SIGTERM/SIGINT, signals the *workers* directly: they
agree on a step, rank 0 commits, every rank exits 143, and the launcher then reports 143 as well.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

from app.errors import ConfigError

__all__ = ["launch_command", "supervise"]

log = logging.getLogger(__name__)


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


def _signal_workers(launcher: subprocess.Popen, signum: int) -> int:
    try:
        workers = psutil.Process(launcher.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for worker in workers:
        try:
            worker.send_signal(signum)
        except psutil.NoSuchProcess:
            pass
    return len(workers)


def supervise(nproc: int, log_dir: str, args: Sequence[str]) -> int:
    """Run the launcher until it ends; returns its exit code (143 after a forwarded stop)."""
    cmd = launch_command(nproc, log_dir, args)
    log.info("launching %d processes: %s", nproc, " ".join(cmd))
    launcher = subprocess.Popen(cmd, env=dict(os.environ))
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        count = _signal_workers(launcher, signum)
        log.warning("%s: forwarded to %d worker process(es)", signal.Signals(signum).name, count)
        stopping = True

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = launcher.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if stopping and code == 0:
        log.info("workers finished before the stop took effect")
    return code
