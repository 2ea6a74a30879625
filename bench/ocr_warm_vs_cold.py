"""OCR warm start vs cold start: steps to reach a target word accuracy on a new font set.

1. pretrain the small recognizer on synthetic digit lines in font set A (DejaVu Sans, Sans Bold);
2. train on font set B (DejaVu Serif, Sans Mono) twice with the same schedule: cold, and warm-started
   (``init.mode: weights``) from step 1's checkpoint;
3. evaluate every ``--eval-every`` steps; report the first step at which each run reaches ``--target``
   and draw both curves (``docs/img/ocr_warm_vs_cold.png``).

    .venv/bin/python bench/ocr_warm_vs_cold.py            # ~6-10 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app  # noqa: E402,F401  (zlib before paddle)

CONFIG = ROOT / "configs" / "ocr_rec_small.yaml"
FONTS_A = "[DejaVuSans.ttf, DejaVuSans-Bold.ttf]"
FONTS_B = "[DejaVuSerif.ttf, DejaVuSansMono.ttf]"


def overrides(run_dir: Path, data_dir: Path, fonts: str, steps: int, eval_every: int, lr: float) -> list[str]:
    sets = {
        "run.dir": run_dir,
        "checkpoint.uri": run_dir / "checkpoints",
        "checkpoint.every_steps": steps,
        "task.options.data_dir": data_dir,
        "task.options.image_shape": "[3, 32, 128]",
        "task.options.max_text_length": 8,
        "task.options.model.width": 16,
        "task.options.model.hidden_size": 64,
        "task.options.synthetic.charset": "0123456789",
        "task.options.synthetic.max_len": 3,
        "task.options.synthetic.n_train": 1500,
        "task.options.synthetic.n_eval": 128,
        "task.options.synthetic.fonts": fonts,
        "schedule.total_steps": steps,
        "schedule.base_lr": lr,
        "schedule.warmup": "{kind: linear, steps: 10, start_lr: 0.0001}",
        "train.batch_size": 16,
        "train.eval_every_steps": eval_every,
        "train.log_every_steps": 50,
        "train.progress_bar": "off",
    }
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def train(args: list[str]) -> float:
    from app.cli import main

    t0 = time.monotonic()
    code = main(["train", "--config", str(CONFIG), *args])
    if code != 0:
        raise SystemExit(f"training exited {code}")
    return time.monotonic() - t0


def curve(run_dir: Path) -> list[tuple[int, float]]:
    points = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "eval":
            points.append((rec["step"], rec["metrics"]["word_accuracy"]))
    return points


def first_reaching(points: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, acc in points if acc >= target), None)


def plot(runs: dict[str, list[tuple[int, float]]], target: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in runs.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=name)
    ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("optimizer step on font set B")
    ax.set_ylabel("word accuracy (eval, font set B)")
    ax.set_title("OCR recognizer: warm start from font set A vs cold start")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench-ocr", help="work folder")
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--steps", type=int, default=300, help="steps of each run on font set B")
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--target", type=float, default=0.5)
    p.add_argument("--plot", default=str(ROOT / "docs" / "img" / "ocr_warm_vs_cold.png"))
    a = p.parse_args()
    out = Path(a.out).resolve()
    pre = out / "pretrain-A"
    seconds = {"pretrain": train(overrides(pre, out / "data-A", FONTS_A, a.pretrain_steps, 100, 0.003))}
    cold_args = overrides(out / "cold-B", out / "data-B", FONTS_B, a.steps, a.eval_every, 0.003)
    seconds["cold"] = train(cold_args)
    warm_args = overrides(out / "warm-B", out / "data-B", FONTS_B, a.steps, a.eval_every, 0.001)
    warm_args += ["--set", f"init.from={pre / 'checkpoints'}", "--set", "init.mode=weights"]
    seconds["warm"] = train(warm_args)
    runs = {
        "cold start (lr 0.003)": curve(out / "cold-B"),
        "warm start from A (lr 0.001)": curve(out / "warm-B"),
    }
    result = {
        "target": a.target,
        "pretrain_final_accuracy_A": curve(pre)[-1][1],
        "steps_to_target": {name: first_reaching(points, a.target) for name, points in runs.items()},
        "final_accuracy": {name: points[-1][1] for name, points in runs.items()},
        "accuracy_at_step_0": {"warm": _eval_at_zero(warm_args), "cold": _eval_at_zero(cold_args)},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "curves": runs,
    }
    plot(runs, a.target, Path(a.plot))
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "curves"}, indent=2))
    return 0


def _eval_at_zero(args: list[str]) -> float:
    """Accuracy of the starting weights on font set B (warm: font-A weights; cold: random init)."""
    import paddle

    from app.checkpoint import open_source
    from app.config import load_config
    from app.tasks.base import build_task

    sets = [args[i + 1] for i in range(0, len(args), 2)]
    cfg = load_config(CONFIG, sets)
    task = build_task(cfg.task, cfg.run.seed)
    paddle.seed(cfg.run.seed)
    with paddle.utils.unique_name.guard():
        model = task.build_model()
    if cfg.init.from_:
        loaded = open_source(
            cfg.init.from_, cfg.store, allow_pickle=False, staging_dir=Path(cfg.run.dir) / "x"
        )
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in loaded.tensors["model"].items()})
    model.eval()
    return task.evaluate(model)["word_accuracy"]


if __name__ == "__main__":
    sys.exit(main())
