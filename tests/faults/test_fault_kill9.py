"""kill -9 of a real trainer at random points of snapshot, write, upload, commit and plain training.

Each chain is one run (local folder or S3 on moto) killed again and again, restarted with the same
command each time, then left to finish. After every kill the store is inspected: every committed
checkpoint must verify (sha256), the next launch must resume from the newest one (zero corrupt loads),
and the work lost is at most one interval beyond the save still in flight. Every chain ends with
parameters bit-identical to an uninterrupted run. ``make test``: 4 kills; ``make faults``: 50.
"""

from __future__ import annotations

import math
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from app.checkpoint import reader
from app.checkpoint.catalog import scan
from app.errors import CheckpointError
from app.store import open_store
from app.store.local import TEMP_TAG
from tests.faults.harness import (
    INTERVAL,
    TOTAL,
    Launch,
    base_overrides,
    clean_env,
    events,
    load_step,
    read_marks,
    record,
    reference,
    rng_for,
    shim_cmd,
    trials,
)

DELAY_S = 0.12
MAX_PER_CHAIN = 8


@dataclass
class Figures:
    trials: int = 0
    chains: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)
    corrupt_committed: int = 0
    wrong_resume: int = 0
    fallbacks_past_torn: int = 0
    max_lost: int = 0
    max_lost_beyond_in_flight: int = 0
    bit_identical_chains: int = 0
    leftover_temp_files: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Kill:
    phase: str
    kill_step: int
    expected: int  # newest verified checkpoint after the kill (0: none, a cold start)
    lag: int  # steps trained since the oldest save not yet committed began


def _target(rng, backend: str) -> tuple[str, int]:
    phases = ["snapshot", "write", "commit", "train"] + (["upload"] if backend == "s3" else [])
    phase = rng.choice(phases)
    nth = rng.randint(1, 2 * INTERVAL) if phase == "train" else rng.randint(1, 3)
    return phase, nth


def _verified_steps(store, fig: Figures, where: str) -> list[int]:
    ok = []
    with tempfile.TemporaryDirectory() as staging:
        for status in scan(store):
            if not status.committed:
                continue
            try:
                if status.problem:
                    raise CheckpointError(status.problem)
                reader.verify(store, status.ref, Path(staging))
                ok.append(status.step)
            except CheckpointError as exc:
                fig.corrupt_committed += 1
                fig.problems.append(f"{where}: committed step {status.step} does not verify: {exc}")
    return ok


def _analyse(launch: Launch, store, start: int, phase: str, fig: Figures, where: str) -> Kill:
    marks = read_marks(launch.marks)
    steps = [int(x.split()[1]) for x in marks if x.startswith("step ")]
    kill_step = steps[-1] if steps else start
    verified = _verified_steps(store, fig, where)
    expected = max(verified, default=0)
    begun = [int(x.split()[2]) for x in marks if x.startswith("begin snapshot")]
    pending = [s for s in begun if s > expected]
    lag = kill_step - min(pending) if pending else 0
    lost = kill_step - expected
    fig.max_lost = max(fig.max_lost, lost)
    fig.max_lost_beyond_in_flight = max(fig.max_lost_beyond_in_flight, lost - lag)
    if lost - lag > INTERVAL:
        fig.problems.append(f"{where}: lost {lost} steps ({lag} in flight), more than one interval")
    return Kill(phase, kill_step, expected, lag)


def _start_of(run_dir: Path) -> int | None:
    """The step a launch started from (0 for a cold start), from its log."""
    for ev in events(run_dir / "log.jsonl"):
        if ev["event"] == "resume":
            return int(ev["step"])
        if ev["event"] == "cold_start":
            return 0
    return None


def _chain(backend: str, uri: str, env: dict, folder: Path, budget: int, rng, store, fig: Figures) -> None:
    previous: Kill | None = None
    n = 0
    for i in range(4 * MAX_PER_CHAIN):
        run_dir = folder / f"launch-{i}" / "run"
        overrides = base_overrides(run_dir, **{"checkpoint.uri": uri})
        want_kill = n < budget
        launch = Launch(shim_cmd(overrides), env, folder / f"launch-{i}", DELAY_S if want_kill else 0.0)
        phase, nth = _target(rng, backend)
        wanted = "step " if phase == "train" else f"begin {phase} "
        reached = want_kill and launch.wait_mark(wanted, nth)
        if reached:
            if phase != "train":
                import time

                time.sleep(rng.uniform(0, DELAY_S))
            launch.signal(signal.SIGKILL)
        rc = launch.finish()
        where = f"{backend} chain launch {i} ({phase} #{nth})" if reached else f"{backend} launch {i}"
        start = _start_of(run_dir)
        expected_start = previous.expected if previous else 0
        if start != expected_start:
            fig.wrong_resume += 1
            fig.problems.append(f"{where}: started from {start}, newest verified was {expected_start}")
        if "skipping checkpoint step" in launch.stderr():
            fig.fallbacks_past_torn += 1
        if not reached:
            assert rc == 0, f"{where}: exit {rc}: {launch.stderr()[-3000:]}"
            return
        assert rc == -signal.SIGKILL, f"{where}: exit {rc}: {launch.stderr()[-3000:]}"
        previous = _analyse(launch, store, start or 0, phase, fig, where)
        fig.trials += 1
        fig.by_phase[phase] = fig.by_phase.get(phase, 0) + 1
        n += 1
    raise AssertionError(f"{backend} chain did not finish in {4 * MAX_PER_CHAIN} launches")


def _same_as_reference(store_uri: str, store_cfg, ref_root: Path) -> bool:
    got = load_step(store_uri, TOTAL, store_cfg)
    want = load_step(ref_root, TOTAL)
    return all(
        sorted(got[g]) == sorted(want[g]) and all(np.array_equal(got[g][k], want[g][k]) for k in want[g])
        for g in ("model", "optimizer")
    )


def test_kill9_at_random_save_phases_never_loses_a_committed_checkpoint(
    tmp_path, s3_server, s3_bucket, s3_store_config
):
    n_total = trials("KILL9")
    rng, seed = rng_for("kill9")
    ref_root = reference()
    fig = Figures()
    per_chain = max(1, min(MAX_PER_CHAIN, math.ceil(n_total / 2)))
    s3_env = clean_env(WARMSTART_S3_ENDPOINT_URL=s3_server, WARMSTART_S3_ADDRESSING_STYLE="path")
    while fig.trials < n_total:
        backend = "local" if fig.chains % 2 == 0 else "s3"
        folder = tmp_path / f"chain-{fig.chains}"
        if backend == "local":
            uri, env, cfg = str(folder / "ckpts"), clean_env(), None
        else:
            uri, env, cfg = f"s3://{s3_bucket}/chain-{fig.chains}", s3_env, s3_store_config
        store = open_store(uri, cfg)
        budget = min(per_chain, n_total - fig.trials)
        _chain(backend, uri, env, folder, budget, rng, store, fig)
        fig.chains += 1
        if _same_as_reference(uri, cfg, ref_root):
            fig.bit_identical_chains += 1
        else:
            fig.problems.append(f"chain {fig.chains - 1} ({backend}): final parameters differ")
        if backend == "local":
            fig.leftover_temp_files += sum(1 for p in (folder / "ckpts").rglob("*") if TEMP_TAG in p.name)
    record("kill9", {**fig.__dict__, "seed": seed, "interval": INTERVAL, "total_steps": TOTAL,
                     "delay_s": DELAY_S})  # fmt: skip
    assert fig.problems == []
    assert fig.trials == n_total and fig.corrupt_committed == 0 and fig.wrong_resume == 0
    assert fig.bit_identical_chains == fig.chains
    assert fig.max_lost_beyond_in_flight <= INTERVAL and fig.max_lost <= 2 * INTERVAL


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
