"""PP-OCRv4 recognition (``svtr_lcnet``) warm start onto a NEW charset vs cold start.

1. pretrain the PP-OCRv4 recognizer (PPLCNetV3 + MultiHead CTC/NRTR, MultiLoss) on synthetic lines of
   charset A (digits) in font set A (DejaVu Sans, Sans Bold);
2. train on charset B (digits plus ``+`` and ``-``: a different dictionary, so different CTC and NRTR
   class counts) in font set B (DejaVu Serif, Sans Mono) twice, same steps, schedule and seed: cold, and
   warm-started with ``init.mode: partial`` from step 1's checkpoint, which must skip exactly the four
   dictionary-sized tensors (CTC ``fc``, NRTR embedding and output projection);
3. evaluate every ``--eval-every`` steps; the target is the cold run's final word accuracy; report the
   first eval step at which each run reaches it, and draw both curves
   (``docs/img/ocr_ppocrv4_warm_vs_cold.png``).

Images are [3, 48, 320] (PPLCNetV3 pools to 40 columns in training and to W/8 in evaluation: equal only at
W = 320). The backbone width ``--scale`` defaults to 0.25, not PP-OCRv4's 0.95: on this CPU a training
step of the full-width model costs about 1.6-1.8 s per image (see docs/ocr.md), too slow for a few hundred
steps per run. Everything else is the real architecture and loss.

    nice -n 5 .venv/bin/python -m bench.ocr_ppocrv4_warm_vs_cold           # writes results.json key
    .venv/bin/python -m bench.ocr_ppocrv4_warm_vs_cold --tiny --out /tmp/x  # smoke (no results, no plot)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib  # noqa: F401  (before paddle: FIELD_NOTES)
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also run as ``python bench/<this file>.py``

from bench.common import ROOT, load_average  # noqa: E402

__all__ = ["KEY", "SKIPPED", "base_config", "run", "first_reaching", "main"]

KEY = "ocr_ppocrv4_warm_vs_cold"
CHARSET_A, FONTS_A = "0123456789", ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"]
CHARSET_B, FONTS_B = "0123456789+-", ["DejaVuSerif.ttf", "DejaVuSansMono.ttf"]
#: The dictionary-sized tensors a partial load onto a new dictionary must skip (PaddleOCR's names).
SKIPPED = (
    "head.ctc_head.fc.weight",
    "head.ctc_head.fc.bias",
    "head.gtc_head.embedding.embedding.weight",
    "head.gtc_head.tgt_word_prj.weight",
)


def base_config(work: Path, name: str, charset: str, fonts: list[str], a: argparse.Namespace) -> Path:
    """One run's config in our own sections (no PaddleOCR blocks), written to ``work/<name>.yaml``."""
    run_dir = work / name
    data = work / f"data-{'A' if charset == CHARSET_A else 'B'}"
    pretrain = name == "pretrain-A"
    steps, every = (a.pretrain_steps, a.pretrain_eval_every) if pretrain else (a.steps, a.eval_every)
    cfg = {
        "run": {"name": f"bench-v4-{name}", "dir": str(run_dir), "seed": 0},
        "task": {"kind": "ocr_rec", "options": {
            "data_dir": str(data), "character_dict_path": "charset_dict.txt", "max_text_length": 8,
            "image_shape": [3, 48, 320], "eval_batch_size": 32,
            "model": {"algorithm": "svtr_lcnet", "svtr_lcnet": {"scale": a.scale, "nrtr_dim": a.nrtr_dim}},
            "synthetic": {"charset": charset, "min_len": 1, "max_len": a.max_len, "n_train": a.n_train,
                          "n_eval": a.n_eval, "fonts": fonts},
        }},
        "optim": {"name": "adam"},
        "schedule": {"base_lr": a.lr, "total_steps": steps, "warmup": {"kind": "linear", "steps": a.warmup}},
        "train": {"batch_size": a.batch, "eval_every_steps": every, "log_every_steps": every,
                  "progress_bar": "off", "metric": "word_accuracy", "data_workers": 0},
        "checkpoint": {"uri": str(run_dir / "checkpoints"), "every_steps": steps, "keep_best": 0},
    }  # fmt: skip
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(config: Path, sets: list[str] = ()) -> float:
    """``warmstart train`` in this process; its wall seconds."""
    from app.cli import main

    started = time.monotonic()
    code = main(["train", "--config", str(config), *(x for s in sets for x in ("--set", s))])
    if code != 0:
        raise SystemExit(f"training {config.name} exited {code}")
    return time.monotonic() - started


def curve(run_dir: Path, metric: str = "word_accuracy") -> list[tuple[int, float]]:
    points = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "eval":
            points.append((rec["step"], rec["metrics"][metric]))
    return points


def first_reaching(points: list[tuple[int, float]], target: float) -> int | None:
    """First eval step with accuracy >= ``target``; a target of 0 (a cold run still on CTC's all-blank
    plateau) counts as reached only above 0, so "reached" always means a word was read."""
    return next((step for step, acc in points if acc >= target and acc > 0), None)


def plot(r: dict, title: str, out: Path) -> None:
    """Word accuracy (with the target) and normalised edit distance, warm and cold, per eval step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"cold": "cold start", "warm": "warm start from charset A (partial)"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, ylabel in (
        (axes[0], "curves", "word accuracy"),
        (axes[1], "norm_edit_dis", "1 - normalised edit distance"),
    ):
        for name, points in r[key].items():
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=labels[name])
        ax.set_xlabel("optimizer step on charset B / font set B")
        ax.set_ylabel(f"{ylabel} (eval, charset B)")
        top = max(p[1] for points in r[key].values() for p in points)
        ax.set_ylim(0, 1 if top > 0.5 else max(0.25, 1.3 * top))  # a low curve stays readable
        ax.grid(alpha=0.3)
    axes[0].axhline(r["target"], color="grey", ls="--", lw=1, label=f"target: cold final {r['target']:.2f}")
    axes[0].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def setup_of(a: argparse.Namespace) -> dict[str, Any]:
    """What the runs were (kept in ``<out>/timing.json``, so ``--collect`` needs no arguments)."""
    return {
        "model": f"svtr_lcnet (PPLCNetV3 scale {a.scale} + MultiHead CTC/NRTR dim {a.nrtr_dim}, MultiLoss)",
        "image_shape": [3, 48, 320],
        "batch": a.batch,
        "lr": a.lr,
        "warmup_steps": a.warmup,
        "decay": "cosine",
        "optim": "adam",
        "pretrain_steps": a.pretrain_steps,
        "steps": a.steps,
        "eval_every": a.eval_every,
        "pretrain_eval_every": a.pretrain_eval_every,
        "words": f"1-{a.max_len} characters",
        "n_train": a.n_train,
        "n_eval": a.n_eval,
        "charset_A": CHARSET_A,
        "fonts_A": FONTS_A,
        "charset_B": CHARSET_B,
        "fonts_B": FONTS_B,
        "data_workers": 0,
    }  # fmt: skip


def measure(a: argparse.Namespace) -> dict[str, Any]:
    """Train the three runs; their wall seconds and the load around them (``<out>/timing.json``)."""
    work = Path(a.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    timing: dict[str, Any] = {"setup": setup_of(a), "load_avg_1min": {"start": load_average()}, "seconds": {}}
    pre = base_config(work, "pretrain-A", CHARSET_A, FONTS_A, a)
    cold = base_config(work, "cold-B", CHARSET_B, FONTS_B, a)
    warm = base_config(work, "warm-B", CHARSET_B, FONTS_B, a)
    timing["seconds"]["pretrain"] = round(run(pre), 1)
    timing["seconds"]["cold"] = round(run(cold), 1)
    sets = [f"init.from={work / 'pretrain-A' / 'checkpoints'}", "init.mode=partial"]
    timing["seconds"]["warm"] = round(run(warm, sets), 1)
    timing["load_avg_1min"]["end"] = load_average()
    timing["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    timing["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (work / "timing.json").write_text(json.dumps(timing))
    return collect(a)


def collect(a: argparse.Namespace) -> dict[str, Any]:
    """The result from the finished runs under ``--out``: their logs, the warm run's load report, timing."""
    work = Path(a.out).resolve()
    timing = json.loads((work / "timing.json").read_text())
    report = json.loads((work / "warm-B" / "warmstart_report.json").read_text())
    curves = {"cold": curve(work / "cold-B"), "warm": curve(work / "warm-B")}
    target = curves["cold"][-1][1]
    reached = {name: first_reaching(points, target) for name, points in curves.items()}
    return {
        "measured": timing["measured"],
        "cpus": os.cpu_count(),
        "load_avg_1min": timing["load_avg_1min"],
        "loadavg_end": timing["loadavg_end"],
        "setup": timing["setup"],
        "partial_load": {
            "skipped": [m[0] for m in report["mismatched"]],
            "shapes": {m[0]: {"checkpoint": m[1], "model": m[2]} for m in report["mismatched"]},
            "loaded_tensors": len(report["loaded"]),
            "loaded_fraction": report["loaded_fraction"],
            "missing": report["missing"],
        },
        "pretrain_final_accuracy_A": curve(work / "pretrain-A")[-1][1],
        "target": target,
        "steps_to_target": reached,
        #: warm steps / cold steps to the target (NaN: one of them did not reach it).
        "steps_ratio": reached["warm"] / reached["cold"] if reached["warm"] and reached["cold"] else math.nan,
        "final_accuracy": {name: points[-1][1] for name, points in curves.items()},
        "best_accuracy": {name: max(p[1] for p in points) for name, points in curves.items()},
        "seconds": timing["seconds"],
        "curves": curves,
        "norm_edit_dis": {
            "cold": curve(work / "cold-B", "norm_edit_dis"),
            "warm": curve(work / "warm-B", "norm_edit_dis"),
        },  # fmt: skip
    }


def table(r: dict) -> str:
    """The doc block (docs/ocr.md, between the ``bench:ocr_ppocrv4_warm_vs_cold`` markers)."""
    s, load, ned = r["setup"], r["partial_load"], r["norm_edit_dis"]

    def at(points: list, step: int | None) -> str:
        return "not reached" if step is None else f"step {step}"

    rows = [
        f"{s['model']}, {s['image_shape'][0]}x{s['image_shape'][1]}x{s['image_shape'][2]}, batch {s['batch']}, "
        f"Adam LR {s['lr']:g} (linear warmup {s['warmup_steps']} steps, then cosine), {s['steps']} steps per run, "
        f"evaluated every {s['eval_every']} steps on {s['n_eval']} lines; words of {s['words']}, "
        f"{s['n_train']} training lines per set. Pretrained {s['pretrain_steps']} steps on charset A "
        f"(`{s['charset_A']}`, {', '.join(s['fonts_A'])}): word accuracy {r['pretrain_final_accuracy_A']:.2f} "
        f"on A. Fine-tuned on charset B (`{s['charset_B']}`, {', '.join(s['fonts_B'])}). Measured "
        f"{r['measured']}, `os.cpu_count()` = {r['cpus']}, 1-min load average {r['load_avg_1min']['start']:.2f} "
        f"at the start, {r['load_avg_1min']['end']:.2f} at the end (the machine was shared).",
        "",
        f"| run on B | first eval (step {r['curves']['cold'][0][0]}) | best | final (step {s['steps']}) | "
        f"first eval >= target {r['target']:.3f} (cold final; > 0 when it is 0) | 1 - norm. edit distance: "
        "best / final | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("cold", "cold start"), ("warm", "warm start from A, `init.mode: partial`")):
        c = r["curves"][name]
        rows.append(f"| {label} | {c[0][1]:.3f} | {r['best_accuracy'][name]:.3f} | {r['final_accuracy'][name]:.3f} "
                    f"| {at(c, r['steps_to_target'][name])} | {max(p[1] for p in ned[name]):.3f} / {ned[name][-1][1]:.3f} "
                    f"| {r['seconds'][name]:.0f} |")  # fmt: skip
    shapes = "; ".join(f"`{n}` {v['checkpoint']} -> {v['model']}" for n, v in load["shapes"].items())
    rows += ["", f"Partial load: {load['loaded_tensors']} tensors loaded ({load['loaded_fraction']:.1%} of the "
                 f"elements), {len(load['skipped'])} skipped as shape mismatches: {shapes}."]  # fmt: skip
    return "\n".join(rows)


def write_result(key: str, value: dict, path: Path) -> None:
    """Read-modify-write: only ``key`` of the shared results file changes."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = value
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ocr_ppocrv4_warm_vs_cold", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-ocr-v4"), help="work folder")
    p.add_argument("--scale", type=float, default=0.25, help="PPLCNetV3 width (PP-OCRv4: 0.95)")
    p.add_argument("--nrtr-dim", type=int, default=384, help="NRTR guidance decoder width (PP-OCRv4: 384)")
    p.add_argument("--pretrain-steps", type=int, default=200)
    p.add_argument("--steps", type=int, default=120, help="steps of each run on charset B")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--pretrain-eval-every", type=int, default=50)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-len", type=int, default=3, help="longest word (max_text_length is 8)")
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-eval", type=int, default=32)
    p.add_argument("--tiny", action="store_true",
                   help="a few steps; writes results/plot only where --results/--plot say")  # fmt: skip
    p.add_argument("--collect", action="store_true", help="no training: read the finished runs under --out")
    p.add_argument("--results", type=Path, help="its key is rewritten (default bench/results.json)")
    p.add_argument("--plot", type=Path, help="default docs/img/ocr_ppocrv4_warm_vs_cold.png")
    p.add_argument("--doc", type=Path, help="its bench block is rewritten (default docs/ocr.md)")
    a = p.parse_args(argv)
    if a.tiny:
        a.pretrain_steps, a.steps, a.eval_every, a.batch, a.warmup = 2, 2, 1, 2, 1
        a.pretrain_eval_every = 2
        a.n_train, a.n_eval, a.scale, a.nrtr_dim = 8, 2, 0.25, 32
    else:
        a.results = a.results or ROOT / "bench" / "results.json"
        a.plot = a.plot or ROOT / "docs" / "img" / "ocr_ppocrv4_warm_vs_cold.png"
        a.doc = a.doc or ROOT / "docs" / "ocr.md"
    result = collect(a) if a.collect else measure(a)
    (Path(a.out).resolve() / "results.json").write_text(json.dumps(result, indent=1))
    if a.plot:
        s = result["setup"]
        title = (
            f"PP-OCRv4 rec, {s['model']}, 3x48x320, batch {s['batch']}: warm start (new dictionary) vs cold"
        )
        plot(result, title, a.plot)
    if a.results:
        write_result(KEY, result, a.results)
    if a.doc:
        from bench.throughput import write_doc_block

        write_doc_block(a.doc, KEY, table(result))
    print(table(result))
    print(json.dumps({k: v for k, v in result.items() if k not in ("curves", "norm_edit_dis")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
