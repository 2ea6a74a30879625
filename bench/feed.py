"""Feeding the loop: throughput with N data workers against the ideal ``max(data, compute)`` per step, each
measured alone; bit-identical final parameters for any worker count; the batch transport (pipe vs shared
memory). ``python -m bench.feed [--quick]``.

The task (``bench.feed_task``) has real costs on both sides: each sample is a JPEG decoded, resized,
flipped (seeded per sample) and normalized with OpenCV; each step is a small conv net's forward, backward
and AdamW update. Per repetition, alternating the order:

* **data alone** for N workers: a :class:`~app.train.batches.WorkerPool` (N = 0: ``train_arrays`` in this
  process) making batches with no training — seconds per batch;
* **compute alone**: the real loop (``run_loop``) on batches decoded once up front (``preload``);
* **the loop** with N = 0, 1, 2 workers (``train.data_workers``), seconds per optimizer step;
* **the loop with the workers in their own session** (N >= 1; bench only, ``setsid`` after the fork): on
  Linux with autogroup scheduling, a session shares one CPU share among its processes, so under load the
  workers of the plain loop split the trainer's share; in their own session they get one of their own.

``ideal(N) = max(data alone(N), compute alone)`` for N >= 1 (for N = 0 nothing overlaps: ``data + compute``).
Figure: ``ideal / actual`` (= actual throughput / ideal throughput). Steps are timed from the third to the
last, so start-up, the final evaluation and save are outside. Every loop run's final parameters are hashed
(sha256) — the same for every N, and a 4-worker run is added for the check.

Writes only its own key (``feed``) into bench/results.json (read-modify-write) and the table between the
``bench:feed`` markers of docs/data.md (``--no-doc``: not). ``bench.run`` runs it as its ``feed`` suite.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bench.feed_task  # noqa: F401  (registers task.kind bench_feed)
from app.config import load_config
from app.train import workers as worker_procs
from app.train.batches import InProcess, WorkerPool
from app.train.data import DataStream
from bench.common import ROOT, interleave, load_average, ratio_figure, summarize
from bench.feed_task import FeedTask, children_cpu
from bench.feed_transport import transport_suite
from bench.inprocess import train_in_process

__all__ = ["FeedSizes", "FULL", "QUICK", "feed_suite", "main"]

SEED = 7
MARK_START, MARK_END = "<!-- bench:feed -->", "<!-- /bench:feed -->"


@dataclass(frozen=True)
class FeedSizes:
    options: dict = field(default_factory=dict)  # task.options of bench_feed
    batch: int = 8
    steps: int = 24
    reps: int = 5
    counts: list[int] = field(default_factory=lambda: [0, 1, 2])
    identical_counts: list[int] = field(default_factory=lambda: [4])  # extra runs for the parameter check
    transport_batches: list[int] = field(default_factory=lambda: [8, 64])
    transport_reps: int = 5
    transport_side: int = 640


FULL = FeedSizes(
    options={"samples": 32, "width": 640, "height": 480, "size": 320, "channels": 4, "layers": 3}
)
QUICK = FeedSizes(
    options={"samples": 8, "width": 160, "height": 120, "size": 64, "channels": 4, "layers": 2},
    batch=4, steps=6, reps=1, transport_batches=[2], transport_reps=1, transport_side=64,
)  # fmt: skip
SKIP = 2  # steps before the timed window (first-step set-up)


def _overrides(run: Path, sizes: FeedSizes, workers: int, preload: bool) -> list[str]:
    sets: dict[str, object] = {
        "run.dir": run, "run.seed": SEED, "task.kind": "bench_feed", "optim.name": "adamw",
        "schedule.base_lr": 0.001, "schedule.total_steps": sizes.steps, "schedule.warmup.kind": "none",
        "schedule.decay.kind": "constant", "train.batch_size": sizes.batch, "train.log_every_steps": sizes.steps,
        "train.progress_bar": "off", "train.metric": "eval_loss", "train.metric_mode": "min",
        "train.data_workers": workers, "train.prefetch": 2, "checkpoint.uri": run / "ck",
        "checkpoint.keep_last": 1, "checkpoint.keep_best": 0, "task.options.preload": preload,
        **{f"task.options.{k}": v for k, v in sizes.options.items()},
    }  # fmt: skip
    return [f"{k}={v}" for k, v in sets.items()]


def params_sha256(net: object) -> str:
    """sha256 over the model's parameters: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name, value in sorted(net.state_dict().items()):  # type: ignore[attr-defined]
        a = value.numpy()
        h.update(f"{name}|{a.dtype.str}|{list(a.shape)}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _step_seconds(stamps: list[float]) -> float:
    timed = stamps[SKIP:]
    return (timed[-1] - timed[0]) / (len(timed) - 1)


@contextlib.contextmanager
def workers_in_own_session(on: bool) -> Iterator[None]:
    """Bench only: data workers started inside call ``setsid`` right after the fork, so that Linux's
    autogroup scheduler gives them a CPU share of their own instead of a part of the trainer's session's."""
    original = worker_procs._die_with_parent

    def and_setsid(parent: int) -> None:
        original(parent)
        os.setsid()

    if on:
        worker_procs._die_with_parent = and_setsid
    try:
        yield
    finally:
        worker_procs._die_with_parent = original


class Runs:
    """The measurements of one suite; each method returns seconds per batch or per step and records the CPU
    seconds per batch or step of the trainer and of the workers in ``cpu[side]``."""

    def __init__(self, work: Path, sizes: FeedSizes) -> None:
        self.work, self.sizes = work, sizes
        self.task = FeedTask(sizes.options, SEED)
        self.hashes: dict[int, list[str]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {}
        self.n = 0

    def data(self, workers: int) -> float:
        stream = DataStream(self.task.train_size(), self.sizes.batch, SEED)
        source = (InProcess(self.task, stream) if workers == 0
                  else WorkerPool(self.task, stream, workers, prefetch=2, timeout=600))  # fmt: skip
        count = max(4, self.sizes.steps - SKIP)
        try:
            source.next()  # the pool's first batch includes the fork and start-up
            started, cpu = time.perf_counter(), (time.process_time(), children_cpu())
            for _ in range(count):
                source.next()
            seconds = (time.perf_counter() - started) / count
            used = (time.process_time() - cpu[0], children_cpu() - cpu[1])
        finally:
            source.close()
        self.cpu.setdefault(f"data{workers}", []).append((used[0] / count, used[1] / count))
        return seconds

    def loop(self, workers: int, preload: bool = False, side: str = "", own_session: bool = False) -> float:
        self.n += 1
        run = self.work / f"run-{self.n}"
        with workers_in_own_session(own_session):
            rc, session = train_in_process(
                load_config(None, _overrides(run, self.sizes, workers, preload), env={})
            )
        assert rc == 0, f"bench run {run} ended with {rc}"
        if not preload:
            self.hashes.setdefault(workers, []).append(params_sha256(session.net))
        cpu, steps = session.task.cpu[SKIP:], len(session.task.cpu) - SKIP - 1
        if side:
            used = ((cpu[-1][0] - cpu[0][0]) / steps, (cpu[-1][1] - cpu[0][1]) / steps)
            self.cpu.setdefault(side, []).append(used)
        return _step_seconds(session.task.stamps)


def _cpu(runs: Runs, side: str) -> dict:
    return {
        "trainer": summarize([c[0] for c in runs.cpu[side]]),
        "workers": summarize([c[1] for c in runs.cpu[side]]),
    }


def _per_n(runs: Runs, counts: list[int], times: dict[str, list[float]], loads: list[float]) -> dict:
    compute, out = times["compute"], {}
    compute_cpu = [c[0] for c in runs.cpu["compute"]]
    for n in counts:
        data, actual = times[f"data{n}"], times[f"loop{n}"]
        ideal = [d + c if n == 0 else max(d, c) for d, c in zip(data, compute, strict=True)]
        data_cpu = [sum(c) for c in runs.cpu["data0"]]  # one core's work per batch
        loop_cpu = runs.cpu[f"loop{n}"]
        # the CPU-time model: on an idle machine with >= n + 1 cores a side takes its CPU seconds
        need = [t + w if n == 0 else max(t, w / n) for t, w in loop_cpu]
        floor = [d + c if n == 0 else max(d / n, c) for d, c in zip(data_cpu, compute_cpu, strict=True)]
        own = (
            {"vs_ideal_own_session": ratio_figure([1 / a for a in times[f"own{n}"]], [1 / i for i in ideal])}
            if n
            else {}
        )
        out[str(n)] = {
            # steps/s: ours = the loop, anchor = the ideal; ratio = ideal seconds / actual seconds
            "vs_ideal": ratio_figure([1 / a for a in actual], [1 / i for i in ideal]),
            **own,
            "data_alone_s": summarize(data),
            "step_s": summarize(actual),
            "ideal_s": summarize(ideal),
            "cpu_per_step_s": _cpu(runs, f"loop{n}"),
            "data_alone_cpu_s": _cpu(runs, f"data{n}"),
            "cpu_model": ratio_figure([1 / x for x in need], [1 / f for f in floor]),
            "load_avg_1min": loads,
        }
    return out


def feed_suite(work: Path, sizes: FeedSizes) -> dict:
    """Every figure of this bench (the ``feed`` key of results.json)."""
    runs = Runs(work, sizes)
    sides = {f"data{n}": (lambda n=n: runs.data(n)) for n in sizes.counts}
    sides["compute"] = lambda: runs.loop(0, preload=True, side="compute")
    sides.update({f"loop{n}": (lambda n=n: runs.loop(n, side=f"loop{n}")) for n in sizes.counts})
    sides.update({f"own{n}": (lambda n=n: runs.loop(n, own_session=True)) for n in sizes.counts if n})
    loads = [load_average()]
    times = interleave(sizes.reps, sides)
    loads.append(load_average())
    for n in sizes.identical_counts:
        runs.loop(n)
    hashes = {str(n): sorted(set(h)) for n, h in sorted(runs.hashes.items())}
    return {
        "cpus": os.cpu_count(), "sizes": asdict(sizes), "compute_alone_s": summarize(times["compute"]),
        "loop": _per_n(runs, sizes.counts, times, loads), "compute_alone_cpu_s": _cpu(runs, "compute"), "params_sha256": hashes,
        "identical_params": int(len({h for hs in hashes.values() for h in hs}) == 1),
        "transport": transport_suite(sizes.transport_batches, sizes.transport_reps, sizes.transport_side),
        "load_avg_1min": loads + [load_average()],
    }  # fmt: skip


def _ms(summary: dict) -> str:
    return f"{summary['median'] * 1000:.1f} ms"


def _own(e: dict) -> str:
    if "vs_ideal_own_session" not in e:
        return "—"
    fig = e["vs_ideal_own_session"]
    return (
        f"{fig['ratio']['median']:.2f}× ({_ms(summarize([1 / x for x in fig['ours']['values']]))} per step)"
    )


def table(r: dict) -> str:
    """The markdown block between the bench:feed markers of docs/data.md."""
    s = r["sizes"]
    lines = [
        f"Measured {r['_run']['started']} on {r['cpus']} CPUs, load average {r['load_avg_1min']} (1 min; start, "
        f"after the loop runs, end). Task `bench_feed`: {s['options']}, batch {s['batch']}, {s['steps']} steps, "
        f"median of {s['reps']} alternated repetitions; compute alone {_ms(r['compute_alone_s'])} per step "
        f"({_ms(r['compute_alone_cpu_s']['trainer'])} CPU).",
        "",
        "| data workers | data alone per batch | ideal per step | loop per step | ideal / actual (target ≥ 0.9) "
        "| loop CPU per step: trainer + workers | CPU model: ideal / loop | workers in their own session: ideal / actual |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for n, e in r["loop"].items():
        ideal = "data + compute" if n == "0" else "max(data, compute)"
        cpu = e["cpu_per_step_s"]
        lines.append(f"| {n} | {_ms(e['data_alone_s'])} | {_ms(e['ideal_s'])} ({ideal}) | {_ms(e['step_s'])} | "
                     f"{e['vs_ideal']['ratio']['median']:.2f}× | {_ms(cpu['trainer'])} + {_ms(cpu['workers'])} | "
                     f"{e['cpu_model']['ratio']['median']:.2f}× | {_own(e)} |")  # fmt: skip
    same = "yes" if r["identical_params"] else "**no**"
    shas = ", ".join(f"{n}: `{h[0][:16]}…`" for n, h in r["params_sha256"].items())
    lines += ["", f"Final parameters bit-identical for workers {', '.join(r['params_sha256'])}: {same} "
              f"(sha256 {shas}).", "",
              "| batch (float32) | MB | pipe round trip | shm round trip | pipe MB/s | shm MB/s | trainer time pipe "
              "| trainer time shm |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in r["transport"].values():
        rt, tr, mbs = t["round_trip_s"], t["trainer_s"], t["mb_per_s"]
        lines.append(f"| {'×'.join(map(str, t['shape']))} | {t['mb']} | {_ms(rt['anchor'])} | {_ms(rt['ours'])} "
                     f"| {mbs['pipe']['median']:.0f} | {mbs['shm']['median']:.0f} | {_ms(tr['anchor'])} "
                     f"| {_ms(tr['ours'])} |")  # fmt: skip
    return "\n".join(lines)


def write_doc(doc: Path, block: str) -> None:
    text = doc.read_text(encoding="utf-8")
    new = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END),
                 lambda _: f"{MARK_START}\n{block}\n{MARK_END}", text, flags=re.S)  # fmt: skip
    doc.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.feed", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (smoke test)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "data.md")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite the bench:feed block of --doc")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = p.parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp:
        result = feed_suite(args.workdir or Path(tmp), QUICK if args.quick else FULL)
    result["_run"] = {"started": started, "mode": "quick" if args.quick else "full"}
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["feed"] = result
    args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    block = table(result)
    if not args.no_doc:
        write_doc(args.doc, block)
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
