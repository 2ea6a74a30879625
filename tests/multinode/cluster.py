"""A data-parallel job across test hosts: `warmstart launch` in each namespace, checkpoints on moto S3.

Each host runs ``ip netns exec <ns> warmstart launch --nproc-per-node 1 -- train ...`` with the
environment a PaddleJob gives a worker pod: ``PADDLE_MASTER`` (host 1's address: its launcher runs the
rendezvous), ``PADDLE_NNODES`` and ``POD_IP``. Every host has its own ``run.dir`` (its local disk);
``checkpoint.uri`` is one S3 prefix on a moto server listening on the bridge address, reachable from
every namespace. One process per host: the machine has 2 cores.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.multinode.netns import Host, Net
from tests.train_helpers import ROOT, clean_env

__all__ = ["Launch", "Job", "start_moto", "TIMEOUT_S"]

VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 300.0  #: generous: a hang is a failure, never a wait for a platform timeout
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: 300 steps of 2 x 8 on the digits task; what the scenarios stop, kill and resume.
SETTINGS = {"schedule.total_steps": 300, "schedule.warmup.steps": 8, "checkpoint.every_steps": 25,
            "train.batch_size": 8, "train.log_every_steps": 1, "train.eval_every_steps": 100,
            "train.progress_bar": "off", "task.options.width": 4}  # fmt: skip
_ports = itertools.count(36100 + os.getpid() % 500 * 8)


def start_moto(address: str) -> tuple[subprocess.Popen, str]:
    """moto_server on ``address`` (the bridge), answering before this returns."""
    port = next(_ports) + 4000
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", address, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **AWS_ENV})  # fmt: skip
    url = f"http://{address}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"moto_server did not answer on {url}")


def records(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


def events(log: Path, name: str) -> list[dict]:
    return [r for r in records(log) if r.get("event") == name]


def last_train_step(log: Path) -> int:
    return max((r["step"] for r in records(log) if r.get("kind") == "train"), default=0)


@dataclass
class Launch:
    """One host's `warmstart launch`."""

    host: Host
    rank: int
    proc: subprocess.Popen
    folder: Path  #: this attempt's launcher logs and the supervisor's stdout/stderr
    run_dir: Path
    started: float
    ended: float | None = None

    @property
    def log(self) -> Path:
        """This host's rank's log.jsonl."""
        return (
            self.run_dir / "log.jsonl" if self.rank == 0 else self.run_dir / f"rank{self.rank}" / "log.jsonl"
        )

    @property
    def stderr(self) -> str:
        return (self.folder / "stderr").read_text(errors="replace")

    @property
    def worker_log(self) -> str:
        path = self.folder / "log" / "workerlog.0"
        return path.read_text(errors="replace") if path.exists() else ""

    def lines(self, prefix: str) -> list[str]:
        return [x for x in (self.stderr + self.worker_log).splitlines() if x.startswith(prefix)]


class Job:
    """One training job (one checkpoint prefix) started, stopped and resumed across the net's hosts."""

    def __init__(self, net: Net, s3_url: str, bucket: str, root: Path, name: str, **settings: object) -> None:
        self.net, self.s3_url, self.root, self.name = net, s3_url, root, name
        self.uri = f"s3://{bucket}/{name}"
        self.settings = {**SETTINGS, **settings}
        self.attempts = 0

    def overrides(self, host: Host) -> list[str]:
        base = {"run.dir": self.root / f"h{host.index}" / "run", "checkpoint.uri": self.uri,
                "store.endpoint_url": self.s3_url, "store.addressing_style": "path", **self.settings}  # fmt: skip
        return [f"{k}={v}" for k, v in base.items()]

    def start(self, hosts: list[Host] | None = None) -> list[Launch]:
        """`warmstart launch` on each of ``hosts`` (default: all); the first one is rank 0 and the master."""
        hosts = hosts or self.net.hosts
        self.attempts += 1
        master = f"{hosts[0].ip}:{next(_ports)}"
        return [self._start_one(h, rank, master, len(hosts)) for rank, h in enumerate(hosts)]

    def _start_one(self, host: Host, rank: int, master: str, nnodes: int) -> Launch:
        folder = self.root / f"h{host.index}" / f"attempt{self.attempts}"
        folder.mkdir(parents=True)
        # PADDLE_RANK fixes the node rank; without it the launcher gives rank 0 to the master's host and
        # orders the others by their random pod names (seen: host 3 became rank 1 of 3)
        env = clean_env(**AWS_ENV, PADDLE_MASTER=master, PADDLE_NNODES=str(nnodes), POD_IP=host.ip,
                        PADDLE_RANK=str(rank))  # fmt: skip
        sets = [a for o in self.overrides(host) for a in ("--set", o)]
        cmd = ["ip", "netns", "exec", host.ns, str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "1",
               "--log-dir", str(folder / "log"), "--", "train", "-c", str(ROOT / "configs/demo.yaml"), *sets]  # fmt: skip
        with (folder / "stderr").open("w") as err, (folder / "stdout").open("w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        run_dir = self.root / f"h{host.index}" / "run"
        return Launch(host, rank, proc, folder, run_dir, time.monotonic())


def wait_step(launches: list[Launch], step: int, timeout: float = TIMEOUT_S) -> None:
    """Until rank 0 has logged training step ``step`` (every launch still running)."""
    deadline = time.monotonic() + timeout
    rank0 = next(x for x in launches if x.rank == 0)
    while last_train_step(rank0.log) < step:
        for x in launches:
            if x.proc.poll() is not None:
                raise AssertionError(
                    f"host {x.host.index} exited {x.proc.returncode} early:\n{x.stderr[-3000:]}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"rank 0 did not reach step {step} within {timeout}s")
        time.sleep(0.05)


def finish(launches: list[Launch], timeout: float = TIMEOUT_S) -> tuple[list[int | None], bool]:
    """Wait for every launch; returns (exit codes, hung). A launch still running after ``timeout`` has hung:
    its namespace's processes are killed and its code is None."""
    deadline = time.monotonic() + timeout
    hung = False
    for x in launches:
        try:
            x.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung = True
            kill_host(x.host)
            x.proc.wait(timeout=30)
        x.ended = x.ended or time.monotonic()
    codes = [None if hung and x.proc.returncode in (-9, 137) else x.proc.returncode for x in launches]
    return codes, hung


def poll_ended(launches: list[Launch]) -> None:
    """Record when each launch ended (call in a loop while waiting)."""
    for x in launches:
        if x.ended is None and x.proc.poll() is not None:
            x.ended = time.monotonic()


def wait_all(launches: list[Launch], timeout: float = TIMEOUT_S) -> tuple[list[int | None], bool]:
    """Like :func:`finish`, but records each launch's end time as it happens (for detection times)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(x.proc.poll() is None for x in launches):
        poll_ended(launches)
        time.sleep(0.05)
    poll_ended(launches)
    return finish(launches, timeout=1.0)


def kill_host(host: Host) -> None:
    """kill -9 every process in the host's namespace (a node lost without notice)."""
    pids = subprocess.run(["ip", "netns", "pids", host.ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def link(host: Host, up: bool) -> None:
    """Cut (or restore) the host's only link: its veth end on the bridge."""
    subprocess.run(["ip", "link", "set", host.veth, "up" if up else "down"], check=True, timeout=30)
