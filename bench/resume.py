"""Real processes: resume latency (process start -> first optimizer step) against the floor, and the
steps lost to a SIGTERM.

Both run ``python -m bench.child train`` — the ``warmstart train`` CLI with the synthetic task — and read
the per-step marks the task writes. Latency is wall time from just before ``Popen`` to the mark of the
first optimizer step; the child is then killed (nothing it does after that step is measured).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, interleave, ratio_figure, summarize, synth_overrides

__all__ = ["resume_suite", "sigterm_suite", "child_command"]

log = logging.getLogger(__name__)


def child_command(config: Path, overrides: list[str]) -> list[str]:
    sets = [arg for item in overrides for arg in ("--set", item)]
    return [sys.executable, "-m", "bench.child", "train", "--config", str(config), *sets]


def _minimal_config(workdir: Path) -> Path:
    path = workdir / "bench_task.yaml"
    path.write_text("task:\n  kind: bench_mlp\n")
    return path


def _marks(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((int(parts[0]), float(parts[1])))
    return out


def _wait_mark(proc: subprocess.Popen, marks: Path, at_least: int, timeout: float) -> list[tuple[int, float]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _marks(marks)
        if got and got[-1][0] >= at_least:
            return got
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[3:5]} exited {proc.returncode} before step {at_least}")
        time.sleep(0.01)
    raise RuntimeError(f"no step {at_least} within {timeout}s")


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def resume_suite(
    workdir: Path, uri: str, endpoint: str, store_sets: list[str], *, width: int, layers: int, reps: int
) -> dict:
    """Paired: ``warmstart train`` resuming from ``uri``'s latest checkpoint vs the floor (bench.floor)."""
    import boto3

    config = _minimal_config(workdir)
    bucket, _, root = uri[len("s3://") :].partition("/")
    listing = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket, Prefix=f"{root}/")
    committed = sorted(
        o["Key"].split("/")[-2] for o in listing.get("Contents", []) if o["Key"].endswith("manifest.json")
    )
    step_key = committed[-1]
    counter = {"n": 0}
    resumed_steps: list[int] = []
    floor_phases: list[dict] = []

    def ours() -> float:
        counter["n"] += 1
        run = workdir / f"resume-{counter['n']}"
        marks = run / "marks.txt"
        run.mkdir(parents=True)
        over = synth_overrides(run, uri, width=width, layers=layers, **{"task.options.marks": marks})
        started = time.time()
        proc = _spawn(child_command(config, [*over, *store_sets]), run / "out.log")
        try:
            first = _wait_mark(proc, marks, 0, 600)[0]
        finally:
            _kill(proc)
        resumed_steps.append(first[0] - 1)
        return first[1] - started

    def floor() -> float:
        counter["n"] += 1
        run = workdir / f"floor-{counter['n']}"
        run.mkdir(parents=True)
        marks = run / "marks.txt"
        cmd = [sys.executable, "-m", "bench.floor", "--bucket", bucket, "--prefix", f"{root}/{step_key}",
               "--endpoint", endpoint, "--dest", str(run), "--marks", str(marks),
               "--width", str(width), "--layers", str(layers)]  # fmt: skip
        started = time.time()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        floor_phases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        return _marks(marks)[0][1] - started

    runs = interleave(reps, {"ours": ours, "floor": floor})
    phases = {k: summarize([p[k] for p in floor_phases]) for k in floor_phases[0]}
    return {
        **ratio_figure(runs["ours"], runs["floor"]),
        "checkpoint": f"{uri}/{step_key}",
        "resumed_from_steps": resumed_steps,
        "floor_phases_s": phases,
    }


def _sigterm_once(workdir: Path, config: Path, over: list[str], stop_after: int, rep: int) -> dict:
    run = workdir / f"sigterm-{rep}"
    run.mkdir(parents=True)
    marks = run / "marks.txt"
    cmd = child_command(config, [*over, f"run.dir={run}", f"task.options.marks={marks}"])
    proc = _spawn(cmd, run / "out.log")
    _wait_mark(proc, marks, stop_after, 600)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=600)
    exit_s = time.monotonic() - sent
    last_done = _marks(marks)[-1][0]
    marks2 = run / "marks-restart.txt"
    cmd2 = child_command(config, [*over, f"run.dir={run}", f"task.options.marks={marks2}"])
    proc2 = _spawn(cmd2, run / "out-restart.log")
    try:
        first = _wait_mark(proc2, marks2, 0, 600)[0][0]
    finally:
        _kill(proc2)
    resumed_at = first - 1
    return {
        "signal_at_step": stop_after,
        "last_step_done": last_done,
        "resumed_at": resumed_at,
        "steps_lost": last_done - resumed_at,
        "exit_code": rc,
        "sigterm_to_exit_s": round(exit_s, 3),
    }


def sigterm_suite(
    workdir: Path, uri_base: str, store_sets: list[str], *, width: int, layers: int, stops: list[int],
    grace_s: float,
) -> dict:  # fmt: skip
    """SIGTERM at each of ``stops`` (between interval checkpoints), then the same command again."""
    config = _minimal_config(workdir)
    trials = []
    for i, stop in enumerate(stops):
        over = synth_overrides(
            workdir, f"{uri_base}/sigterm-{i}", width=width, layers=layers,
            **{"checkpoint.every_steps": 10, "preempt.grace_seconds": grace_s},
        )  # fmt: skip
        trials.append(_sigterm_once(workdir, config, [*over, *store_sets], stop, i))
        log.info("sigterm trial %d: %s", i, trials[-1])
    return {
        "trials": trials,
        "steps_lost_max": max(t["steps_lost"] for t in trials),
        "exit_codes": sorted({t["exit_code"] for t in trials}),
        "sigterm_to_exit_s": summarize([t["sigterm_to_exit_s"] for t in trials]),
        "grace_seconds": grace_s,
    }
