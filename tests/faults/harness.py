"""Shared pieces of the fault suite: trial counts, launching real trainers, reading their traces,
the uninterrupted reference run, tree fingerprints and the JSON results ``make faults`` turns into
``docs/reliability.md``.

Counts: ``make test`` runs a reduced number of trials; ``WS_FAULTS_FULL=1`` (what ``make faults`` sets)
runs the full counts; ``WS_FAULTS_N_<NAME>`` overrides one count. ``WS_FAULTS_SEED`` fixes the random
choices (default: a fresh seed, printed in the results). ``WS_FAULTS_RESULTS=DIR`` writes one JSON file
of figures per suite into DIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.train_helpers import ROOT, run_inprocess

__all__ = [
    "ROOT",
    "VENV_BIN",
    "PY",
    "trials",
    "rng_for",
    "record",
    "clean_env",
    "sets",
    "base_overrides",
    "shim_cmd",
    "Launch",
    "read_marks",
    "events",
    "reference",
    "tree_digest",
    "load_step",
]

VENV_BIN = Path(sys.executable).parent
PY = sys.executable
#: The training run every fault suite uses: 40 optimizer steps of the tiny digits CNN.
TOTAL = 40
INTERVAL = 5

_REDUCED_FULL = {"KILL9": (4, 50), "SIGTERM": (3, 20)}


def trials(name: str) -> int:
    """How many trials of ``name`` to run: reduced by default, full under WS_FAULTS_FULL=1."""
    explicit = os.environ.get(f"WS_FAULTS_N_{name}")
    if explicit:
        return int(explicit)
    reduced, full = _REDUCED_FULL[name]
    return full if os.environ.get("WS_FAULTS_FULL") == "1" else reduced


def rng_for(name: str) -> tuple[random.Random, int]:
    seed = int(os.environ.get("WS_FAULTS_SEED") or random.SystemRandom().randrange(1 << 30))
    return random.Random(f"{seed}-{name}"), seed


def record(name: str, figures: dict[str, Any]) -> None:
    """Write ``figures`` to $WS_FAULTS_RESULTS/<name>.json when that variable is set."""
    out = os.environ.get("WS_FAULTS_RESULTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without WARMSTART_* settings, with the venv first on PATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARMSTART_", "WS_FAULT"))}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def base_overrides(run_dir: Path, **extra: object) -> list[str]:
    """The fault-suite run: no evaluation until the end, so saves come exactly every INTERVAL steps."""
    base: dict[str, object] = {
        "run.dir": str(run_dir),
        "schedule.total_steps": TOTAL,
        "schedule.warmup.steps": 8,
        "checkpoint.every_steps": INTERVAL,
        "train.batch_size": 16,
        "train.log_every_steps": 1,
        "train.eval_every_steps": "null",
        "train.progress_bar": "off",
        "task.options.width": 4,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def shim_cmd(overrides: list[str], command: str = "train") -> list[str]:
    return [PY, "-m", "tests.faults.shim", command, "-c", "configs/demo.yaml", *sets(overrides)]


class Launch:
    """One trainer process started through the shim, its marks file and its stderr in a file."""

    def __init__(self, cmd: list[str], env: dict[str, str], folder: Path, delay_s: float = 0.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.marks = folder / "marks.txt"
        self.stderr_path = folder / "stderr.txt"
        env = {**env, "WS_FAULT_MARKS": str(self.marks), "WS_FAULT_DELAY_S": str(delay_s)}
        self._err = open(self.stderr_path, "w")  # noqa: SIM115  (closed in finish)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._err)

    def wait_mark(self, wanted: str, nth: int = 1, timeout: float = 120) -> bool:
        """Wait until the nth line starting with ``wanted`` appears; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [x for x in read_marks(self.marks) if x.startswith(wanted)]
            if len(lines) >= nth:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.005)
        raise AssertionError(f"no {wanted!r} #{nth} within {timeout}s; stderr: {self.stderr()[-2000:]}")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def finish(self, timeout: float = 180) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            raise
        finally:
            self._err.close()
        return rc

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def read_marks(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [" ".join(x.split()[:-1]) for x in path.read_text().splitlines() if x.strip()]


def events(log: Path, name: str | None = None) -> list[dict]:
    if not log.exists():
        return []
    out = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return [r for r in out if r.get("kind") == "event" and (name is None or r.get("event") == name)]


_REFERENCE: dict[str, Path] = {}


def reference() -> Path:
    """An uninterrupted in-process run of the fault-suite config with a checkpoint at EVERY step kept:
    its checkpoint root (``step-N`` holds the exact state after N steps)."""
    if "root" not in _REFERENCE:
        folder = Path(tempfile.mkdtemp(prefix="ws-faults-ref-"))
        ov = base_overrides(
            folder / "run",
            **{"checkpoint.every_steps": 1, "checkpoint.keep_last": "null", "checkpoint.keep_best": 0},
        )
        rc, _ = run_inprocess(ov)
        assert rc == 0
        _REFERENCE["root"] = folder / "run" / "checkpoints"
    return _REFERENCE["root"]


def load_step(root: Path | str, step: int, store_cfg: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """Model and optimizer tensors of ``step-N`` under ``root`` (sha256-verified by the reader)."""
    from app.checkpoint import reader
    from app.checkpoint.catalog import scan
    from app.store import open_store

    store = open_store(str(root), store_cfg)
    ref = next(s.ref for s in scan(store) if s.step == step and s.ref is not None)
    with tempfile.TemporaryDirectory() as staging:
        return reader.load(store, ref, Path(staging)).tensors


def tree_digest(*roots: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``roots`` (a file root maps to its own name)."""
    out: dict[str, str] = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
