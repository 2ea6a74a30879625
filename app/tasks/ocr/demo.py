"""The OCR demo (``make ocr-demo`` = ``python -m app.tasks.ocr.demo``), through the real CLI:

1. cold-train the small recognizer on synthetic digit lines (DejaVu Sans) and publish checkpoints;
2. warm-start ``partial`` to a **changed dictionary** (digits + ``abcdef``, rendered in DejaVu Serif): the
   CTC head is reported as skipped, the backbone is frozen for the first steps;
3. ``warmstart export`` the fine-tuned model;
4. run it with the paddleocr wheel's own ``TextRecognizer`` and compare with our evaluation's text.

Everything goes under ``runs/ocr-demo`` (``--out`` to change); about two minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import app  # noqa: F401  (zlib before paddle)

__all__ = ["main"]

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "ocr_rec_small.yaml"
SHAPE = "[3, 32, 128]"


def _common(root: Path, stage: str, charset: str, fonts: str, steps: int) -> list[str]:
    sets = {
        "run.dir": root / stage,
        "checkpoint.uri": root / stage / "checkpoints",
        "checkpoint.every_steps": 100,
        "task.options.data_dir": root / f"data-{stage}",
        "task.options.image_shape": SHAPE,
        "task.options.max_text_length": 8,
        "task.options.model.width": 16,
        "task.options.model.hidden_size": 64,
        "task.options.synthetic.charset": charset,
        "task.options.synthetic.max_len": 3,
        "task.options.synthetic.n_train": 1500,
        "task.options.synthetic.n_eval": 100,
        "task.options.synthetic.fonts": fonts,
        "task.options.augment.rotate_prob": 0.2,
        "schedule.total_steps": steps,
        "schedule.base_lr": 0.003,
        "schedule.warmup": "{kind: linear, steps: 10, start_lr: 0.0001}",
        "train.batch_size": 16,
        "train.log_every_steps": 50,
        "train.eval_every_steps": 100,
        "train.progress_bar": "off",
    }
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def _cli(args: list[str]) -> None:
    from app.cli import main as cli

    print("$ warmstart " + " ".join(args[:3]) + " ...", flush=True)
    code = cli(args)
    if code != 0:
        raise SystemExit(f"ocr-demo: `warmstart {args[0]}` exited {code}")


def _predict(root: Path, export_dir: Path, fine: list[str]) -> dict:
    import paddle

    from app.config import load_config
    from app.tasks.base import build_task
    from app.tasks.ocr.predictor import predict_files
    from app.train.start import checkpoint_uri

    overrides = [fine[i + 1] for i in range(0, len(fine), 2)]
    cfg = load_config(CONFIG, overrides)
    task = build_task(cfg.task, cfg.run.seed)
    from app.checkpoint import open_source

    loaded = open_source(checkpoint_uri(cfg), cfg.store, allow_pickle=False, staging_dir=root / "x")
    with paddle.utils.unique_name.guard():
        model = task.build_model()
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in loaded.tensors["model"].items()})
    model.eval()
    paths = task.eval_set.paths[:20]
    ours = [t for t, _ in task.recognize(model, paths)]
    theirs = [t for t, _ in predict_files(export_dir, paths)]
    for path, truth, a, b in list(zip(paths, task.eval_set.texts, ours, theirs, strict=False))[:8]:
        print(f"  {path.name}: label {truth!r:8} ours {a!r:8} PaddleOCR predictor {b!r}")
    return {"images": len(paths), "identical": sum(a == b for a, b in zip(ours, theirs, strict=False))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/ocr-demo", help="demo folder (default runs/ocr-demo)")
    parser.add_argument("--steps", type=int, default=500, help="cold-training steps (default 500)")
    args = parser.parse_args(argv)
    root = Path(args.out).resolve()
    base = ["--config", str(CONFIG)]

    print("== 1. cold start: digits, DejaVu Sans", flush=True)
    cold = _common(root, "cold", "0123456789", "[DejaVuSans.ttf]", args.steps)
    _cli(["train", *base, *cold])

    print("== 2. partial warm start: dictionary digits+abcdef, DejaVu Serif; head skipped, backbone frozen")
    fine = _common(root, "finetune", "0123456789abcdef", "[DejaVuSerif.ttf]", args.steps // 2)
    fine += ["--set", f"init.from={root / 'cold' / 'checkpoints'}", "--set", "init.mode=partial"]
    fine += [
        "--set",
        'init.ignore=["head.*"]',
        "--set",
        'freeze=[{patterns: ["backbone.*"], until_step: 40}]',
    ]
    fine += ["--set", "schedule.base_lr=0.001"]
    _cli(["train", *base, *fine])
    report = json.loads((root / "finetune" / "warmstart_report.json").read_text())
    print(f"   skipped (init.ignore): {report['ignored']}; loaded {len(report['loaded'])} tensors")

    print("== 3. export for PaddleOCR's predictor")
    export_dir = root / "inference"
    _cli(["export", *base, *fine, "--out", str(export_dir)])

    print("== 4. tools/infer/predict_rec.TextRecognizer on the exported model")
    result = _predict(root, export_dir, fine)
    print(f"   identical text on {result['identical']}/{result['images']} images")
    return 0 if result["identical"] == result["images"] else 1


if __name__ == "__main__":
    sys.exit(main())
