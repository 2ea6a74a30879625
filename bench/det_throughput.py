"""Detection training throughput (images/s): our loop against PaddleDetection's own ``Trainer``.

Both sides train the shipped PicoDet-S config (``configs/ppdet/picodet_s_lcnet.yml`` with its own reader:
``Decode``, ``RandomFlip``; ``BatchRandomResize`` to 96 px, ``NormalizeImage``, ``Permute``, ``PadGT``;
``use_ema``) on the same generated 640 px JPEGs, with a ppdet ``LearningRate`` (cosine + linear warmup) and
``OptimizerBuilder`` (Momentum, L2) added, the same batch size and the same number of loader workers
(ppdet's ``worker_num``, our ``train.data_workers``), one epoch. Theirs: ``ppdet.engine.Trainer`` as
``tools/train.py`` runs it; ours: ``warmstart train`` (in the side's process) on a config that names only the
ppdet file and the data, so batch size, schedule and optimizer come from the translation.

Timing, alternation and the figure: :mod:`bench.throughput`. Usage:
``python -m bench.det_throughput [--quick] [--pairs 3] [--batch 16] [--workers 2] [--steps 16] [--warmup 4]``
writes ``det_throughput`` into bench/results.json and the block between the ``bench:det_throughput``
markers of docs/detection.md (``--no-write``: neither); ``--side ours|theirs --case FILE`` runs one side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
import zlib  # noqa: F401  (before paddle: FIELD_NOTES)
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.ppdet_case import COCO_DATASETS
from bench.throughput import (
    add_arguments,
    bench_main,
    load_range,
    side_by_side,
    stamp,
    stamp_our_steps,
    table_rows,
)

__all__ = ["write_case", "measure", "table", "main"]

MODEL = ROOT / "configs/ppdet/picodet_s_lcnet.yml"
DOC = "docs/detection.md"
KEY = "det_throughput"

_PPDET = (
    """\
_BASE_: ['{model}']
use_gpu: false
log_iter: {log_every}
save_dir: {save_dir}
snapshot_epoch: 1000
print_flops: false
worker_num: {workers}
epoch: 1

"""
    + COCO_DATASETS
    + """
LearningRate:
  base_lr: 0.02
  schedulers:
  - !CosineDecay {{max_epochs: 1, min_lr_ratio: 0.1}}
  - !LinearWarmup {{start_factor: 0.1, steps: {warmup}}}

OptimizerBuilder:
  optimizer: {{momentum: 0.9, type: Momentum}}
  regularizer: {{factor: 0.00004, type: L2}}

TrainReader:
  batch_size: {batch}
"""
)


def _to_jpeg(data: Path) -> None:
    """Re-encode the generated PNGs as JPEG (quality 95) and point the annotations at them."""
    import cv2

    for name in ("train.json", "eval.json"):
        coco = json.loads((data / name).read_text())
        for img in coco["images"]:
            png = data / "images" / img["file_name"]
            jpg = png.with_suffix(".jpg")
            cv2.imwrite(str(jpg), cv2.imread(str(png)), [cv2.IMWRITE_JPEG_QUALITY, 95])
            png.unlink()
            img["file_name"] = jpg.name
        (data / name).write_text(json.dumps(coco))


def write_case(
    root: Path, *, batch: int, workers: int, steps: int, warmup: int, size: int = 640, log_every: int = 10
) -> Path:
    """Images, ppdet config and our config under ``root``; returns the case file the sides read."""
    from app.tasks.det.synth import write_shapes

    data = write_shapes(root / "data", n_train=batch * steps, n_eval=2, size=size, seed=0)
    _to_jpeg(data)
    ppdet_yml = root / "ppdet.yml"
    ppdet_yml.write_text(_PPDET.format(model=MODEL, log_every=log_every, save_dir=root / "ppdet_out",
                                       workers=workers, data=data, warmup=max(1, steps // 4), batch=batch))  # fmt: skip
    ours = root / "warmstart.yaml"
    ours.write_text(textwrap.dedent(f"""\
        run: {{name: det-throughput, dir: {root / "ours"}, seed: 0}}
        task:
          kind: detection
          options: {{ppdet_config: {ppdet_yml}, dataset_dir: {data}}}
        train: {{log_every_steps: {log_every}, progress_bar: "off", amp: "off", data_workers: {workers}}}
        checkpoint: {{uri: {root / "ours" / "ckpt"}}}
        """))  # fmt: skip
    case = root / "case.json"
    spec = {"root": str(root), "ppdet_yml": str(ppdet_yml), "ours_yaml": str(ours), "batch": batch, "warmup": warmup,
            "workers": workers, "steps": steps, "size": size}  # fmt: skip
    case.write_text(json.dumps(spec))
    return case


# ---------------------------------------------------------------------------------------------- sides


def _theirs(spec: dict[str, Any], out: Path) -> list[float]:
    import paddle
    from ppdet.engine import Trainer
    from ppdet.engine.callbacks import Callback

    from app.tasks.det.workspace import load_ppdet_config

    stamps: list[float] = []

    class Stamp(Callback):
        def on_step_end(self, status: dict) -> None:
            if status.get("mode") == "train":
                stamp(stamps)

    cfg = load_ppdet_config(Path(spec["ppdet_yml"]), {"save_dir": str(out)})
    paddle.set_device("cpu")
    trainer = Trainer(cfg, mode="train")
    trainer.register_callbacks([Stamp(None)])
    trainer.train(validate=False)
    return stamps


def _ours(spec: dict[str, Any], out: Path) -> list[float]:
    from app.config import load_config
    from bench.inprocess import train_in_process

    stamps = stamp_our_steps()
    overrides = [f"run.dir={out}", f"checkpoint.uri={out / 'ckpt'}"]
    rc, _ = train_in_process(load_config(Path(spec["ours_yaml"]), overrides, env={}))
    if rc != 0:
        raise SystemExit(f"warmstart train exited {rc}")
    return stamps


# -------------------------------------------------------------------------------------------- measure


def measure(root: Path, *, batch: int, workers: int, steps: int, warmup: int, pairs: int) -> dict:
    shutil.rmtree(root, ignore_errors=True)
    case = write_case(root, batch=batch, workers=workers, steps=steps, warmup=warmup)
    return side_by_side(KEY, case, pairs, warmup, batch, unit="images/s", batch=batch, workers=workers,
                        steps=steps, warmup=warmup, image_px=640, config=str(MODEL.relative_to(ROOT)))  # fmt: skip


def table(r: dict) -> str:
    return "\n".join([
        f"PicoDet-S (`{r['config']}`, its own reader: 96 px training size), generated {r['image_px']} px JPEGs, "
        f"batch {r['batch']}, {r['workers']} loader workers each side, steps {r['warmup'] + 1}–{r['steps']} timed "
        f"after {r['warmup']} warm-up steps; {r['ratio']['n']} alternating pairs, {r['measured']}, "
        f"`os.cpu_count()` = {r['cpus']}, {load_range(r)}.",
        "",
        *table_rows(r, "ppdet `Trainer`", ".2f"),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.det_throughput", description=__doc__.splitlines()[0])
    add_arguments(p, DOC)
    p.add_argument("--work", type=Path, default=ROOT / "runs/bench_det_tput")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--warmup", type=int, default=4)
    args = p.parse_args(argv)

    def measured(a: argparse.Namespace) -> dict:
        return measure(
            a.work, batch=a.batch, workers=a.workers, steps=a.steps, warmup=a.warmup, pairs=a.pairs
        )

    quick = {"pairs": 1, "batch": 2, "workers": 1, "steps": 3, "warmup": 1}
    return bench_main(args, KEY, DOC, (_ours, _theirs), table, measured, quick)


if __name__ == "__main__":
    raise SystemExit(main())
