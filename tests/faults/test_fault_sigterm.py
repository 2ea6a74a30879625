"""SIGTERM at random steps of a real trainer: exit 143 with a committed checkpoint holding exactly the
state of an uninterrupted run at that step, an exact resume, and bit-identical final parameters.

Each chain is one run stopped several times at random steps and restarted with the same command until it
finishes. ``make test``: 3 stops; ``make faults``: 20.
"""

from __future__ import annotations

import json
import signal

import numpy as np

from tests.faults.harness import (
    TOTAL,
    Launch,
    base_overrides,
    clean_env,
    events,
    load_step,
    record,
    reference,
    rng_for,
    shim_cmd,
    trials,
)

PER_CHAIN = 5


def _same(a: dict, b: dict) -> bool:
    return all(
        sorted(a[g]) == sorted(b[g]) and all(np.array_equal(a[g][k], b[g][k]) for k in b[g])
        for g in ("model", "optimizer")
    )


def _chain(tmp, stops: list[int], ref_root, figures: dict) -> None:
    ckpts = tmp / "ckpts"
    resumed_from = 0
    for i, at in enumerate([*stops, None]):
        run_dir = tmp / f"launch-{i}" / "run"
        overrides = base_overrides(run_dir, **{"checkpoint.uri": str(ckpts)})
        launch = Launch(shim_cmd(overrides), clean_env(), tmp / f"launch-{i}")
        if at is not None:
            assert launch.wait_mark("step ", max(1, at - resumed_from)), launch.stderr()[-2000:]
            launch.signal(signal.SIGTERM)
        rc = launch.finish()
        start = [e["step"] for e in events(run_dir / "log.jsonl") if e["event"] in ("resume", "cold_start")]
        assert start == [resumed_from], f"launch {i} started at {start}, expected {resumed_from}"
        if at is None:
            assert rc == 0, launch.stderr()[-3000:]
            figures["bit_identical_chains"] += _same(load_step(ckpts, TOTAL), load_step(ref_root, TOTAL))
            return
        err = launch.stderr()
        assert rc == 143, err[-3000:]
        assert "Traceback" not in err
        stopped = events(run_dir / "log.jsonl", "preempted")[0]["step"]
        assert err.strip().splitlines()[-1].startswith(f"warmstart: preempted: stopped at step {stopped} ")
        figures["trials"] += 1
        figures["exit_143"] += 1
        figures["stop_lag_steps_max"] = max(figures["stop_lag_steps_max"], stopped - at)
        figures["exact_checkpoints"] += _same(load_step(ckpts, stopped), load_step(ref_root, stopped))
        state = json.loads((ckpts / f"step-{stopped:08d}" / "trainer_state.json").read_text())
        want = json.loads((ref_root / f"step-{stopped:08d}" / "trainer_state.json").read_text())
        assert {k: state[k] for k in ("step", "data", "rng", "scheduler")} == {
            k: want[k] for k in ("step", "data", "rng", "scheduler")
        }
        resumed_from = stopped


def test_sigterm_at_random_steps_resumes_bit_identically(tmp_path):
    n = trials("SIGTERM")
    rng, seed = rng_for("sigterm")
    ref_root = reference()
    figures = {"trials": 0, "chains": 0, "exit_143": 0, "exact_checkpoints": 0, "bit_identical_chains": 0,
               "stop_lag_steps_max": 0, "stop_steps": []}  # fmt: skip
    while figures["trials"] < n:
        k = min(PER_CHAIN, n - figures["trials"])
        stops = sorted(rng.sample(range(1, TOTAL - 2), k))
        figures["stop_steps"].append(stops)
        _chain(tmp_path / f"chain-{figures['chains']}", stops, ref_root, figures)
        figures["chains"] += 1
    record("sigterm", {**figures, "seed": seed, "total_steps": TOTAL})
    assert figures["trials"] == n == figures["exit_143"] == figures["exact_checkpoints"]
    assert figures["bit_identical_chains"] == figures["chains"]
