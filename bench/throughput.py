"""Training throughput side by side with a toolkit's own trainer: the plumbing both throughput benches share.

Each measured run is a fresh ``python -m bench.<module> --side ours|theirs --case <case.json>`` process, so
neither side inherits the other's imports, caches or worker processes. The side prints one JSON line with the
``time.perf_counter()`` stamp taken at the end of every optimizer step (ours: after ``train_step``; theirs:
the trainer's own ``on_step_end`` callback). Throughput counts steps ``warmup+1 .. steps`` only:
``(steps - warmup) * batch / (stamp[steps] - stamp[warmup])``, so start-up, the first ``warmup`` steps and
everything after the last step (final evaluation, final save) are outside both figures.

Runs alternate ours / theirs (the order rotating each pair, :func:`bench.common.interleave`); the figure is
the median of the per-pair ratios, recorded with ``os.cpu_count()`` and the load average before each run.
Beside it, per run: the trainer process's CPU time per timed step (``time.process_time``; less sensitive to
other people's load than wall time, but its loader workers are not counted), the median step's wall time,
and for ours the step timed by phase (:func:`phase_ms`: data wait, tensors, forward, optimizer, the task's
after-step hook, the reseed; backward and the rest of the step; the log step and checkpoint saves).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
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
    "run_one",
    "print_stamps",
    "stamp_our_steps",
    "phase_ms",
    "alternate",
    "write_result",
    "write_doc_block",
    "table_rows",
    "add_arguments",
    "finish",
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
    ``run_loop`` calls by its module name), and time its phases (:data:`PHASES`); returns the stamp list."""
    import app.train.loop as loop

    stamps: list[float] = []
    inner = loop.train_step

    def stamped(s: Any) -> Any:
        out = inner(s)
        stamp(stamps)
        return out

    loop.train_step = _timed("step", stamped)
    _time_phases()
    return stamps


#: (steps stamped when the call started, wall seconds) of each call of a phase of our step.
PHASES: dict[str, list[tuple[int, float]]] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kw: Any) -> Any:
        at, started = len(CPU_STAMPS), time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            PHASES.setdefault(name, []).append((at, time.perf_counter() - started))

    return timed


def _time_phases() -> None:
    """Wrap the parts of our step: the batch source (data wait), tensors, forward + loss, optimizer, the
    task's after-step hook (EMA), the reseed, the log step and checkpoint saves."""
    import app.train.batches as batches
    import app.train.loop as loop
    import app.train.rng as rng
    import bench.inprocess as inprocess

    batches.InProcess.next = _timed("data", batches.InProcess.next)
    batches.WorkerPool.next = _timed("data", batches.WorkerPool.next)
    rng.seed_for_step = _timed("reseed", rng.seed_for_step)
    loop._log_window = _timed("log", loop._log_window)
    loop.save = _timed("checkpoint", loop.save)
    prepare = inprocess.prepare

    def prepared(*args: Any, **kw: Any) -> Any:
        s = prepare(*args, **kw)
        s.task.to_batch = _timed("to_tensors", s.task.to_batch)
        s.task.loss = _timed("forward", s.task.loss)
        s.optimizer.step = _timed("optimizer", s.optimizer.step)
        s.optimizer.clear_grad = _timed("optimizer", s.optimizer.clear_grad)
        if getattr(s.task, "after_step", None) is not None:
            s.task.after_step = _timed("after_step", s.task.after_step)
        return s

    inprocess.prepare = prepared


def phase_ms(warmup: int) -> dict[str, float]:
    """Wall ms per timed step of each phase: the calls made between the stamps of step ``warmup`` and the
    last step, divided by their number; ``backward_and_rest`` is the train step minus its timed parts."""
    steps = len(CPU_STAMPS) - warmup
    if steps <= 0:
        return {}
    out = {
        name: 1000 * sum(d for at, d in calls if warmup <= at < len(CPU_STAMPS)) / steps
        for name, calls in PHASES.items()
    }
    inside = ("data", "reseed", "to_tensors", "forward", "optimizer", "after_step")
    out["backward_and_rest"] = out["step"] - sum(out.get(k, 0.0) for k in inside)
    return {k: round(v, 3) for k, v in out.items()}


def run_one(
    side: str, case: Path, ours: Callable[..., list[float]], theirs: Callable[..., list[float]]
) -> None:
    """One side's run (``--side``) of ``case`` in this process: prints its step stamps (ours: and phases)."""
    import logging
    import shutil

    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(case.read_text())
    out = Path(spec["root"]) / f"{side}-{os.getpid()}"
    stamps = (ours if side == "ours" else theirs)(spec, out)
    shutil.rmtree(out, ignore_errors=True)
    print_stamps(stamps, steps=len(stamps), phases_ms=phase_ms(spec["warmup"]) if side == "ours" else None)


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
        "phases_ms": out.get("phases_ms"),
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


def side_by_side(module: str, case: Path, pairs: int, warmup: int, per_step: int, /, **fields: Any) -> dict:
    """``bench.<module>``'s two sides on ``case``, alternated ``pairs`` times: the figure of :func:`alternate`
    with the run's settings (``fields``) and when it was measured."""
    sides = {side: (lambda side=side: run_side(module, side, case)) for side in ("ours", "theirs")}
    fig = alternate(pairs, sides, warmup, per_step)
    fig.update(**fields, measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    return fig


def load_range(r: dict) -> str:
    """The load averages seen before the runs of a figure, as a range for its table's caption."""
    loads = [x for v in r["load_avg_1min"].values() for x in v]
    return f"load average {min(loads):.2f}–{max(loads):.2f}"


def bench_main(
    args: argparse.Namespace, key: str, doc: str, sides: tuple[Callable[..., list[float]], ...],
    table: Callable[[dict], str], measure: Callable[[argparse.Namespace], dict], quick: dict[str, int],
) -> int:  # fmt: skip
    """A throughput bench's command line after parsing: one ``--side`` (``sides`` = ours, theirs), a
    ``--render`` of the stored figure, or a measurement (``quick`` overrides the sizes under ``--quick``)."""
    import logging

    if args.side:
        run_one(args.side, args.case, *sides)
        return 0
    if args.render:
        return finish(args, key, doc, None, table)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.quick:
        vars(args).update(quick)
    return finish(args, key, doc, measure(args), table)


#: Earlier runs of the same bench kept beside the latest (a loaded machine makes single runs vary).
KEEP_PREVIOUS = 3


def _brief(r: dict) -> dict:
    """What an earlier run keeps: when, its pairs' ratios and loads."""
    loads = [x for v in r["load_avg_1min"].values() for x in v]
    return {"measured": r["measured"], "ratio": r["ratio"], "load_avg_1min": [min(loads), max(loads)]}


def write_result(key: str, value: dict, path: Path = ROOT / "bench" / "results.json") -> None:
    """Read-modify-write ``path``: only ``key`` changes; the run it replaces is kept in ``previous``."""
    results = json.loads(path.read_text()) if path.exists() else {}
    if key in results and "ratio" in results[key]:
        old = results[key]
        value["previous"] = [_brief(old), *old.get("previous", [])][:KEEP_PREVIOUS]
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


def _mm(s: dict, fmt: str) -> str:
    return f"{s['median']:{fmt}} ({s['min']:{fmt}}–{s['max']:{fmt}})"


def table_rows(r: dict, anchor: str, fmt: str) -> list[str]:
    """The table both benches show: the figure, the trainer process's CPU time per step, the median step."""
    runs = r["runs"]
    pairs = list(zip(runs["ours"], runs["theirs"], strict=True))

    def each(field: str) -> tuple[dict, dict, dict]:
        ours, theirs = ([x[field] for x in runs[side]] for side in ("ours", "theirs"))
        return summarize(ours), summarize(theirs), summarize([t[field] / o[field] for o, t in pairs])

    cpu_o, cpu_t, cpu_r = each("cpu_ms_per_step")
    med_o, med_t, med_r = each("wall_ms_median_step")
    rows = [
        f"| measured (median, min–max) | {anchor} | ours | ours vs {anchor.split(' ')[0]} (> 1×: ours better) |",
        "|---|---|---|---|",
        f"| **{r['unit']}** (target ≥ 1.0×) | {_mm(r['anchor'], fmt)} | {_mm(r['ours'], fmt)} | "
        f"**{r['ratio']['median']:.3f}×** ({r['ratio']['min']:.3f}–{r['ratio']['max']:.3f}) |",
        f"| CPU ms per step, trainer process (its loader workers not counted) | {_mm(cpu_t, '.1f')} | "
        f"{_mm(cpu_o, '.1f')} | {cpu_r['median']:.3f}× ({cpu_r['min']:.3f}–{cpu_r['max']:.3f}) |",
        f"| median step, wall ms | {_mm(med_t, '.1f')} | {_mm(med_o, '.1f')} | "
        f"{med_r['median']:.3f}× ({med_r['min']:.3f}–{med_r['max']:.3f}) |",
    ]
    phases = [x["phases_ms"] for x in runs["ours"] if x.get("phases_ms")]
    if phases:
        names = [k for k in phases[0] if k != "step"]
        shown = ", ".join(f"{k} {statistics.median(p.get(k, 0.0) for p in phases):.4g}" for k in names)
        step = statistics.median(p["step"] for p in phases)
        rows += [
            "",
            f"Our step by phase (wall ms per timed step, median over our runs; train step {step:.4g}): {shown}.",
        ]
    for prev in r.get("previous", []):
        q, (lo, hi) = prev["ratio"], prev["load_avg_1min"]
        rows += ["", f"Earlier run ({prev['measured']}, {q['n']} pairs, load average {lo:.2f}–{hi:.2f}): "
                     f"{q['median']:.3f}× ({q['min']:.3f}–{q['max']:.3f})."]  # fmt: skip
    if r.get("previous"):
        pooled = [*r["ratio"]["values"], *(v for p in r["previous"] for v in p["ratio"]["values"])]
        rows.append(f"All {len(pooled)} pairs pooled: median {statistics.median(pooled):.3f}×.")
    return rows


def add_arguments(p: argparse.ArgumentParser, doc: str) -> None:
    """The options both benches share."""
    p.add_argument("--side", choices=["ours", "theirs"], help="run one side of --case and print its stamps")
    p.add_argument("--case", type=Path)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one pair (the smoke test's setting)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument(
        "--results", type=Path, help="its key is rewritten (default bench/results.json; --quick: none)"
    )
    p.add_argument("--doc", type=Path, help=f"its block is rewritten (default {doc}; --quick: none)")
    p.add_argument("--no-write", action="store_true", help="print only: no results.json, no doc block")
    p.add_argument("--render", action="store_true", help="only rewrite the doc block from the results file")


def finish(args: argparse.Namespace, key: str, doc: str, r: dict | None, table: Callable[[dict], str]) -> int:
    """Print the figure, write its key of the results file and its doc block (``r`` None: ``--render``)."""
    results = args.results or (None if args.quick else ROOT / "bench/results.json")
    doc_path = args.doc or (None if args.quick else ROOT / doc)
    if r is None:
        r = json.loads(Path(results).read_text())[key]
    else:
        print(json.dumps(r, indent=1))
        if results and not args.no_write:
            write_result(key, r, results)
    print(table(r))
    if doc_path and not args.no_write:
        write_doc_block(doc_path, key, table(r))
    return 0
