"""Real signals to real `warmstart` processes: start one, wait for a training step, a handler or a
spot poll, send the signal, and read what the process left (exit code, last line, run log events)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.train_helpers import ROOT, clean_env

VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 300  # generous: 2 shared cores, paddle + toolkit imports in every process


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def train_cmd(config: str, overrides: list[str]) -> list[str]:
    return [str(VENV_BIN / "warmstart"), "train", "-c", str(ROOT / config), *sets(overrides)]


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env or clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def records(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def events(log: Path, name: str) -> list[dict]:
    return [r for r in records(log) if r.get("event") == name]


def wait_until(
    proc: subprocess.Popen, done: Callable[[], bool], what: str, timeout: float = TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited {proc.returncode} before {what}: {proc.stderr.read()[-3000:]}"
            )
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {what} within {timeout}s")


def trained_to(log: Path, step: int) -> Callable[[], bool]:
    return lambda: any(r.get("kind") == "train" and r["step"] >= step for r in records(log))


def catches_sigterm(pid: int) -> Callable[[], bool]:
    """True once the process has a SIGTERM handler (read from /proc, independently of app.signals)."""

    def check() -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(mask, 16) >> (signal.SIGTERM - 1) & 1)

    return check


def stop(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> tuple[int, str]:
    """Send ``signum``; returns (exit code, stderr)."""
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, err


def last_line(err: str) -> str:
    lines = err.strip().splitlines()
    return lines[-1] if lines else ""


def committed_steps(ckpt_root: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1]) for p in ckpt_root.glob("step-*/manifest.json"))


#: The two-process run the launch tests stop and resume (2 x batch 8), and compare with one uninterrupted
#: run of the same settings (the ``two_process_reference`` fixture in conftest.py).
LAUNCH_LONG = {"train.batch_size": 8, "schedule.total_steps": 300, "checkpoint.every_steps": 25,
               "train.eval_every_steps": 100}  # fmt: skip


def launch_overrides(run_dir: Path) -> list[str]:
    from tests.train_helpers import tiny_overrides

    return tiny_overrides(run_dir, **LAUNCH_LONG)


def launch_cmd(run_dir: Path, log_dir: Path, config: str = "configs/demo.yaml") -> list[str]:
    return [str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "2", "--log-dir", str(log_dir), "--",
            "train", "-c", str(ROOT / config), *sets(launch_overrides(run_dir))]  # fmt: skip


#: A start-up hook (tests/slow_exit/sitecustomize.py) that makes one launch rank finish later.
SLOW_HOOK = ROOT / "tests" / "slow_exit"


def slow_rank_env(spec: str) -> dict[str, str]:
    """The environment for a launch whose rank ``<rank>`` waits ``<seconds>`` at ``<where>``
    (``spec`` = ``"<rank>@<where>=<seconds>"``, see the hook's docstring)."""
    env = clean_env(WS_TEST_SLOW=spec)
    env["PYTHONPATH"] = ":".join(p for p in (str(SLOW_HOOK), str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env
