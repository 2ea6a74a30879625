"""``python -m bench.saves --before DIR [--quick]``: throughput with a checkpoint every 50 steps vs none,
for two (or more) versions of the code side by side, alternating.

Each measurement is one child process that runs :func:`bench.stall.throughput_suite` with ``reps=2``
(checkpoints / none, then none / checkpoints) from one source tree (``PYTHONPATH`` and working folder =
that tree), so the compared versions run the very same benchmark code of their own tree and never share
a process. Variants alternate (the order rotating each round, :func:`bench.common.interleave`); the
load average and CPU count are recorded next to every run. The figure per variant is the median of its
per-run ratios (steps/s with checkpoints / steps/s without).

The ``after`` variant's runs are also written as the ``throughput`` figure of ``make bench`` (same shape
as :func:`bench.stall.throughput_suite` gives, :func:`throughput_figure`), so docs/benchmarks.md shows
the alternated measurement.

Variants: ``before`` (the tree given with ``--before``, e.g. ``git archive <commit> | tar -x -C DIR``),
``after`` (this tree, or ``--after DIR``) and ``after_nice0`` (this tree with the save thread's nice increment set to 0:
what the lower priority alone buys). Writes its own key (``saves``) and ``throughput`` into
bench/results.json (read-modify-write) and prints a Markdown table; the findings go to bench/findings.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, load_average, ratio_figure, state_mb

__all__ = ["VARIANTS", "child_code", "run_variant", "throughput_figure", "main"]

#: name -> (tree: "before" | "after", Python run before the suite in the child)
VARIANTS: dict[str, tuple[str, str]] = {
    "before": ("before", ""),
    "after": ("after", ""),
    "after_nice0": ("after", "import app.checkpoint.saver as sv; sv.SAVE_NICE = 0"),
}


def child_code(prelude: str, workdir: Path, size: dict) -> str:
    """The child's program: one throughput pair (reps=2) in its own tree, JSON on the last line."""
    return (
        "import json, logging, os, zlib\n"
        f"{prelude}\n"
        "from pathlib import Path\n"
        "from bench.stall import throughput_suite\n"
        "logging.disable(logging.INFO)\n"
        f"fig = throughput_suite(Path({str(workdir)!r}), reps=2, **{size!r})\n"
        "print(json.dumps({'ratios': fig['ratio']['values'], 'ckpt': fig['ours']['values'],"
        " 'none': fig['anchor']['values']}))\n"
    )


def run_variant(tree: Path, prelude: str, workdir: Path, size: dict) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load = load_average()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", child_code(prelude, workdir, size)],
        cwd=tree, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"child in {tree} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(load_avg_1min=load, seconds=round(time.monotonic() - started, 1), cpus=os.cpu_count())
    return out


def measure(trees: dict[str, Path], rounds: int, size: dict, workdir: Path, names: list[str]) -> dict:
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rnd in range(rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for name in order:
            tree, prelude = VARIANTS[name]
            result = run_variant(trees[tree], prelude, workdir / f"{name}-{rnd}", size)
            runs[name].append(result)
            print(
                f"round {rnd + 1}/{rounds} {name}: ratios {result['ratios']} load {result['load_avg_1min']}",
                json.dumps({"variant": name, **result}),  # an interrupted run can be rebuilt from the log
                flush=True,
            )
    out: dict = {"size": size, "rounds": rounds, "cpus": os.cpu_count(), "variants": {}}
    for name, results in runs.items():
        ratios = [r for res in results for r in res["ratios"]]
        out["variants"][name] = {"ratio_median": statistics.median(ratios), "runs": results}
    return out


def throughput_figure(result: dict, variant: str = "after") -> dict:
    """The ``throughput`` entry of results.json from one variant's alternated runs."""
    runs, size = result["variants"][variant]["runs"], result["size"]
    fig = ratio_figure([v for r in runs for v in r["ckpt"]], [v for r in runs for v in r["none"]])
    loads = [r["load_avg_1min"] for r in runs]
    fig.update(
        state_mb=round(state_mb(size["width"], size["layers"]), 1), steps=size["steps"],
        every_steps=size["every"], source=f"python -m bench.saves ({variant})", cpus=result["cpus"],
        _run={"seconds": round(sum(r["seconds"] for r in runs), 1), "load_avg_1min": max(loads),
              "load_avg_1min_each": loads},
    )  # fmt: skip
    return fig


def table(result: dict) -> str:
    lines = ["| variant | ratio (median) | ratios | load (1 min) at each run |", "|---|---|---|---|"]
    for name, v in result["variants"].items():
        ratios = ", ".join(f"{r:.3f}" for res in v["runs"] for r in res["ratios"])
        loads = ", ".join(f"{res['load_avg_1min']:.2f}" for res in v["runs"])
        lines.append(f"| {name} | {v['ratio_median']:.3f}× | {ratios} | {loads} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.saves", description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="source tree of the version to compare with")
    p.add_argument("--after", type=Path, default=ROOT, help="source tree of the new version (default: this)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny model and few steps (smoke test)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/warmstart-bench-saves"))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="'' to skip")
    args = p.parse_args(argv)
    size = (
        {"width": 128, "layers": 2, "steps": 24, "every": 10}
        if args.quick
        else {"width": 2048, "layers": 4, "steps": 150, "every": 50}
    )
    names = [n for n in args.variants.split(",") if n]
    result = measure(
        {"before": args.before.resolve(), "after": args.after.resolve()},
        args.rounds,
        size,
        args.workdir,
        names,
    )
    result["started_load_avg_1min"] = result["variants"][names[0]]["runs"][0]["load_avg_1min"]
    print(table(result))
    if str(args.out) not in ("", "."):
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        results["saves"] = result
        if "after" in result["variants"]:
            results["throughput"] = throughput_figure(result)
        args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
