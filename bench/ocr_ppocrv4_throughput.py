"""PP-OCRv4 recognition training throughput on CPU (images/s), per-step data vs compute time, data workers
0 and 1 side by side.

The full ``ch_PP-OCRv4_rec.yml`` model (``svtr_lcnet``: PPLCNetV3 scale 0.95 + MultiHead CTC/NRTR,
MultiLoss, Adam) trains on synthetic 3x48x320 lines with the wheel's ``RecAug`` on (``task.options.rec_aug``
with its defaults, what a ``Train.dataset.transforms`` ``RecAug`` entry translates to) and the CTC + NRTR
labels of ``MultiLabelEncode``. Each run is a fresh ``python -m bench.ocr_ppocrv4_throughput --side N
--case FILE`` process with ``train.data_workers: N``; runs alternate 0 / 1 (:func:`bench.throughput.alternate`,
the order rotating each pair). Images/s counts steps ``warmup+1 .. steps`` (:func:`bench.throughput.rate`);
the step is timed by phase (:func:`bench.throughput.phase_ms`): ``data`` is making the batch in the trainer
(workers 0: decode, RecAug, label encoding, resize) or waiting for it (workers 1), ``compute`` is the rest of
the step (forward, backward, optimizer). Load average before each run and ``os.cpu_count()`` are recorded.

    nice -n 5 .venv/bin/python -m bench.ocr_ppocrv4_throughput          # writes results.json key
    .venv/bin/python -m bench.ocr_ppocrv4_throughput --tiny --work /tmp/x  # smoke: nothing written
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zlib  # noqa: F401  (before paddle: FIELD_NOTES)
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also run as ``python bench/<this file>.py``

from bench.common import ROOT, summarize  # noqa: E402
from bench.throughput import (  # noqa: E402
    alternate,
    phase_ms,
    print_stamps,
    run_side,
    stamp_our_steps,
    write_doc_block,
)

__all__ = ["KEY", "write_case", "measure", "table", "main"]

KEY = "ocr_ppocrv4_throughput"
MODULE = "ocr_ppocrv4_throughput"
WORKERS = (0, 1)


def write_case(root: Path, *, steps: int, warmup: int, batch: int, scale: float, nrtr_dim: int = 384) -> Path:
    """Config and synthetic data under ``root`` (rendered here once, not inside the timed runs)."""
    from app.tasks.ocr.options import SynthOptions
    from app.tasks.ocr.synth import ensure_synthetic

    synth = {"charset": "0123456789abcdefghijklmnopqrstuvwxyz", "min_len": 1, "max_len": 10,
             "n_train": max(64, batch * (steps + 1)), "n_eval": 4, "fonts": ["DejaVuSans.ttf", "DejaVuSerif.ttf"]}  # fmt: skip
    ensure_synthetic(root / "data", SynthOptions(**synth))
    cfg = {
        "run": {"name": "bench-v4-throughput", "dir": str(root / "run"), "seed": 0},
        "task": {"kind": "ocr_rec", "options": {
            "data_dir": str(root / "data"), "character_dict_path": "charset_dict.txt", "max_text_length": 25,
            "image_shape": [3, 48, 320], "eval_batch_size": 4, "synthetic": synth, "rec_aug": {},
            "model": {"algorithm": "svtr_lcnet", "svtr_lcnet": {"scale": scale, "nrtr_dim": nrtr_dim}},
        }},
        "optim": {"name": "adam"},
        "schedule": {"base_lr": 0.001, "total_steps": steps, "warmup": {"kind": "linear", "steps": 1}},
        "train": {"batch_size": batch, "log_every_steps": steps, "progress_bar": "off", "metric": "word_accuracy"},
        "checkpoint": {"uri": str(root / "run" / "checkpoints"), "every_steps": 10 * steps, "keep_best": 0},
    }  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    case = root / "case.json"
    case.write_text(json.dumps({"root": str(root), "config": str(root / "config.yaml"), "warmup": warmup}))
    return case


def _side(workers: int, case: Path) -> None:
    """One run in this process: train with ``workers`` data workers, print step stamps and phases."""
    import logging

    from app.config import load_config
    from bench.inprocess import train_in_process

    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(case.read_text())
    out = Path(spec["root"]) / f"w{workers}-{os.getpid()}"
    stamps = stamp_our_steps()
    cfg = load_config(Path(spec["config"]), [f"run.dir={out}", f"checkpoint.uri={out / 'ckpt'}",
                                             f"train.data_workers={workers}"], env={})  # fmt: skip
    rc, _ = train_in_process(cfg)
    shutil.rmtree(out, ignore_errors=True)
    if rc != 0:
        raise SystemExit(f"warmstart train exited {rc}")
    print_stamps(stamps, steps=len(stamps), phases_ms=phase_ms(spec["warmup"]))


def measure(
    root: Path, *, steps: int, warmup: int, batch: int, pairs: int, scale: float, nrtr_dim: int = 384
) -> dict[str, Any]:
    shutil.rmtree(root, ignore_errors=True)
    case = write_case(root, steps=steps, warmup=warmup, batch=batch, scale=scale, nrtr_dim=nrtr_dim)
    sides = {f"workers_{n}": (lambda n=n: run_side(MODULE, str(n), case)) for n in reversed(WORKERS)}
    fig = alternate(pairs, sides, warmup, batch)  # ratio: workers_1 / workers_0
    per_workers = {}
    for name, runs in fig["runs"].items():
        phases = [r["phases_ms"] for r in runs]
        data = [p.get("data", 0.0) for p in phases]
        step = [p["step"] for p in phases]
        per_workers[name] = {
            "data_ms_per_step": summarize(data),
            "compute_ms_per_step": summarize([s - d for s, d in zip(step, data, strict=True)]),
            "step_ms": summarize(step),
        }
    fig["images_per_s"] = {"workers_1": fig.pop("ours"), "workers_0": fig.pop("anchor")}
    fig["per_step"] = per_workers
    fig.update(unit="images/s", batch=batch, steps=steps, warmup=warmup, scale=scale, nrtr_dim=nrtr_dim, image_shape=[3, 48, 320],
               rec_aug="wheel RecAug, defaults (tia/crop/reverse/noise/jitter/blur/hsv 0.4)",
               measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               loadavg_end=Path("/proc/loadavg").read_text().strip())  # fmt: skip
    return fig


def table(r: dict) -> str:
    loads = [x for v in r["load_avg_1min"].values() for x in v]
    rows = [
        f"PP-OCRv4 rec (`svtr_lcnet`, PPLCNetV3 scale {r['scale']}), 3x48x320, batch {r['batch']}, RecAug on; "
        f"steps {r['warmup'] + 1}–{r['steps']} timed after {r['warmup']} warm-up step(s); {r['ratio']['n']} "
        f"alternating pair(s), {r['measured']}, `os.cpu_count()` = {r['cpus']}, 1-min load average before the "
        f"runs {min(loads):.2f}–{max(loads):.2f} (the machine was shared).",
        "",
        "| data workers | images/s | step, wall ms | data ms per step | compute ms per step |",
        "|---|---|---|---|---|",
    ]
    for n in WORKERS:
        name = f"workers_{n}"
        ips, ps = r["images_per_s"][name], r["per_step"][name]
        rows.append(f"| {n} | {ips['median']:.2f} | {ps['step_ms']['median']:.0f} | "
                    f"{ps['data_ms_per_step']['median']:.0f} | {ps['compute_ms_per_step']['median']:.0f} |")  # fmt: skip
    q = r["ratio"]
    (first, *_) = r["runs"]["workers_0"]
    shown = ", ".join(f"{k} {v:.0f}" for k, v in first["phases_ms"].items() if k != "step")
    rows += ["", f"The step by phase with 0 workers (first run, wall ms per timed step): {shown}."]
    rows += ["", f"images/s with 1 worker / with 0: {q['median']:.3f}× (pairs: "
                 f"{', '.join(f'{v:.3f}' for v in q['values'])})."]  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m bench.{MODULE}", description=__doc__.splitlines()[0])
    p.add_argument("--side", help="run one side (its data worker count) of --case and print its stamps")
    p.add_argument("--case", type=Path)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-ocr-v4-tput")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--pairs", type=int, default=1)
    p.add_argument("--scale", type=float, default=0.95, help="PPLCNetV3 width (PP-OCRv4: 0.95)")
    p.add_argument("--nrtr-dim", type=int, default=384, help="NRTR guidance decoder width (PP-OCRv4: 384)")
    p.add_argument("--tiny", action="store_true",
                   help="tiny model and steps; writes a results file only where --results says")  # fmt: skip
    p.add_argument("--results", type=Path, help="its key is rewritten (default bench/results.json)")
    p.add_argument("--doc", type=Path, help="its bench block is rewritten (default docs/ocr.md)")
    a = p.parse_args(argv)
    if a.side is not None:
        _side(int(a.side), a.case)
        return 0
    if a.tiny:
        a.steps, a.warmup, a.batch, a.pairs, a.scale, a.nrtr_dim = 2, 1, 2, 1, 0.25, 32
    else:
        a.results = a.results or ROOT / "bench" / "results.json"
        a.doc = a.doc or ROOT / "docs" / "ocr.md"
    r = measure(a.work, steps=a.steps, warmup=a.warmup, batch=a.batch, pairs=a.pairs, scale=a.scale,
                nrtr_dim=a.nrtr_dim)  # fmt: skip
    (a.work / "result.json").write_text(json.dumps(r, indent=1))
    if a.results:
        from bench.ocr_ppocrv4_warm_vs_cold import write_result

        write_result(KEY, r, a.results)
    print(json.dumps({k: v for k, v in r.items() if k != "runs"}, indent=1))
    print(table(r))
    if a.doc:
        write_doc_block(a.doc, KEY, table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
