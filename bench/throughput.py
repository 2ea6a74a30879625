"""Training throughput side by side with a toolkit's own trainer: the plumbing both throughput benches share.

Each measured run is a fresh ``python -m bench.<module> --side ours|theirs --case <case.json>`` process, so
neither side inherits the other's imports, caches or worker processes. The side prints one JSON line with the
``time.perf_counter()`` stamp taken at the end of every optimizer step (ours: after ``train_step``; theirs:
the trainer's own ``on_step_end`` callback). Throughput counts steps ``warmup+1 .. steps`` only:
``(steps - warmup) * batch / (stamp[steps] - stamp[warmup])``, so start-up, the first ``warmup`` steps and
everything after the last step (final evaluation, final save) are outside both figures.

Runs alternate ours / theirs (the order rotating each pair, :func:`bench.common.interleave`); the figure is
the median of the per-pair ratios, recorded with ``os.cpu_count()`` and the load average before each run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, interleave, load_average, ratio_figure, summarize

__all__ = [
    "rate",
    "stamp",
    "run_side",
    "print_stamps",
    "stamp_our_steps",
    "alternate",
    "write_result",
    "write_doc_block",
]


#: ``time.process_time()`` at the end of every step of this process (this process only: not its workers).
CPU_STAMPS: list[float] = []


def rate(stamps: list[float], warmup: int, per_step: int) -> float:
    """Items per second over steps ``warmup+1 .. len(stamps)`` (``stamps[i]``: end of step ``i+1``)."""
    if warmup < 1 or len(stamps) <= warmup:
        raise ValueError(
            f"need more than {warmup} step stamps after a warm-up of at least 1, got {len(stamps)}"
        )
    return (len(stamps) - warmup) * per_step / (stamps[-1] - stamps[warmup - 1])


def stamp(stamps: list[float]) -> None:
    """Append the wall-clock stamp (and the process CPU time to ``CPU_STAMPS``) of a step's end."""
    stamps.append(time.perf_counter())
    CPU_STAMPS.append(time.process_time())


def _thread_names() -> list[str] | None:
    """This process's threads by name (Linux), e.g. a loader's prefetch thread or an OpenMP pool."""
    if not os.path.isdir("/proc/self/task"):
        return None
    return sorted(
        Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")
    )


def print_stamps(stamps: list[float], **extra: Any) -> None:
    """The side's one line of output (the last stdout line, read by :func:`run_side`)."""
    threads = _thread_names()
    line = {"stamps": stamps, "cpu_stamps": CPU_STAMPS, "threads": threads, **extra}
    sys.stdout.write("\n" + json.dumps(line) + "\n")
    sys.stdout.flush()


def stamp_our_steps() -> list[float]:
    """Record the end of every optimizer step of our loop (wraps ``app.train.loop.train_step``, which
    ``run_loop`` calls by its module name); returns the list the stamps go to."""
    import app.train.loop as loop

    stamps: list[float] = []
    inner = loop.train_step

    def stamped(s: Any) -> Any:
        out = inner(s)
        stamp(stamps)
        return out

    loop.train_step = stamped
    return stamps


def run_side(module: str, side: str, case: Path, timeout: float = 1800) -> dict[str, Any]:
    """Run one side in a fresh process; its JSON line (``stamps`` and extras) plus the load before it."""
    load = load_average()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", f"bench.{module}", "--side", side, "--case", str(case)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} --side {side} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith('{"stamps"')][-1]
    return {**json.loads(line), "load_avg_1min_before": load}


def _per_step(out: dict[str, Any], warmup: int) -> dict[str, float]:
    """Extras of one run: process CPU ms per timed step (this process only) and the median step's wall ms."""
    wall, cpu = out["stamps"], out["cpu_stamps"]
    steps = len(wall) - warmup
    gaps = sorted(b - a for a, b in zip(wall[warmup - 1 : -1], wall[warmup:], strict=True))
    return {
        "steps": len(wall),
        "threads": out.get("threads"),
        "cpu_ms_per_step": round(1000 * (cpu[-1] - cpu[warmup - 1]) / steps, 3),
        "wall_ms_median_step": round(1000 * gaps[len(gaps) // 2], 3),
        "load_avg_1min_before": out["load_avg_1min_before"],
    }


def alternate(pairs: int, sides: dict[str, Callable[[], dict[str, Any]]], warmup: int, per_step: int) -> dict:
    """``pairs`` runs of each side, alternating; the ratio figure (items/s, ours / theirs) with the loads,
    and per run the CPU time per step and the median step (less sensitive to other people's load)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}

    def measure(name: str) -> Callable[[], float]:
        def once() -> float:
            out = sides[name]()
            runs[name].append(_per_step(out, warmup))
            return rate(out["stamps"], warmup, per_step)

        return once

    rates = interleave(pairs, {name: measure(name) for name in sides})
    ours, theirs = list(sides)
    fig = ratio_figure(rates[ours], rates[theirs])
    fig["load_avg_1min"] = {n: [r["load_avg_1min_before"] for r in rs] for n, rs in runs.items()}
    fig["cpus"] = os.cpu_count()
    fig["runs"] = runs
    fig["median_step_ratio"] = summarize(
        [
            b["wall_ms_median_step"] / a["wall_ms_median_step"]
            for a, b in zip(runs[ours], runs[theirs], strict=True)
        ]
    )  # theirs / ours: > 1 means our median step is shorter
    return fig


def write_result(key: str, value: dict, path: Path = ROOT / "bench" / "results.json") -> None:
    """Read-modify-write ``path``: only ``key`` changes."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = value
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")


def write_doc_block(doc: Path, name: str, block: str) -> None:
    """Replace the text between ``<!-- bench:name -->`` and ``<!-- /bench:name -->`` in ``doc``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = doc.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise RuntimeError(f"{doc} has no {start} ... {end} block to write into")
    new = re.sub(
        re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{block}\n{end}", text, flags=re.S
    )
    doc.write_text(new, encoding="utf-8")
