"""Side by side with PaddleDetection: the same config, weights and images through ppdet's own ``Trainer``
and through Warmstart's loop, step by step.

The ppdet config is the shipped PicoDet-S (``configs/ppdet/picodet_s_lcnet.yml``) with a ppdet
``LearningRate`` (cosine + linear warmup), ``OptimizerBuilder`` (Momentum, L2) and a deterministic
``TrainReader`` (Decode, Resize, NormalizeImage, Permute; ``PadGT``; ``shuffle: false``). ppdet's real
``ppdet.engine.Trainer`` trains it and records, through a ppdet callback, the LR and the loss of every
step; its initial weights are then loaded into ours (``init.from``, every tensor), whose config names
only the ppdet file and the data, so the schedule, optimizer and batch size come from the translation.

Cases (the only difference that can remain between the two is the order of the images):

* ``one_image``: 1 image, batch 1 — nothing to order;
* ``same_order``: 2 images, batch 2, ``run.seed`` picked so that our seeded per-epoch order equals ppdet's
  file order at every step; ``same_order_adamw``: the same with ppdet's ``AdamW`` (weight_decay 0.05);
* ``other_order``: 4 images, batch 4 — the same images in every batch, in another order within it;
* ``control_ppdet_reordered``: not ours at all — ppdet against ppdet with the 4 images' ids reversed (ppdet
  reads images sorted by id), the same starting weights: what the order within a batch alone does.

Prints a JSON summary (max abs / rel loss difference, LR equality) and a Markdown table.
Usage: python bench/det_side_by_side.py [--out runs/bench_det_sbs] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import app  # noqa: F401  (zlib before paddle)
from bench.ppdet_case import run_ours, run_ppdet, write_case

__all__ = ["CASES", "CONTROL", "Compared", "compare_case", "seed_in_file_order"]

#: name -> (images, batch, seed; None = search one whose order equals ppdet's file order, optimizer)
CASES: dict[str, tuple[int, int, int | None, str]] = {
    "one_image": (1, 1, 0, "momentum"),
    "same_order": (2, 2, None, "momentum"),
    "same_order_adamw": (2, 2, None, "adamw"),
    "other_order": (4, 4, 0, "momentum"),
}
CONTROL = "control_ppdet_reordered"


def seed_in_file_order(n: int, epochs: int) -> int:
    """The smallest ``run.seed`` whose data stream reads ``n`` images in file order for ``epochs`` epochs
    (one batch per epoch), as ppdet's ``shuffle: false`` reader does."""
    from app.train.data import DataStream

    for seed in range(100_000):
        stream = DataStream(n, n, seed)
        if all(stream.next_indices() == list(range(n)) for _ in range(epochs)):
            return seed
    raise RuntimeError(f"no seed below 100000 reads {n} images in order for {epochs} epochs")


@dataclass
class Compared:
    name: str
    steps: int
    lr_ppdet: list[float]
    lr_ours: list[float]
    loss_ppdet: list[float]
    loss_ours: list[float]

    @property
    def loss_abs(self) -> list[float]:
        return [abs(a - b) for a, b in zip(self.loss_ppdet, self.loss_ours, strict=True)]

    @property
    def loss_rel(self) -> list[float]:
        return [d / abs(a) for d, a in zip(self.loss_abs, self.loss_ppdet, strict=True)]

    def summary(self) -> dict:
        lr64 = [abs(a - b) for a, b in zip(self.lr_ppdet, self.lr_ours, strict=True)]
        return {
            "case": self.name,
            "steps": self.steps,
            "lr_equal_float32": bool(np.array_equal(np.float32(self.lr_ppdet), np.float32(self.lr_ours))),
            "lr_equal_float64": self.lr_ppdet == self.lr_ours,
            "lr_max_abs_diff_float64": max(lr64),
            "loss_identical_steps": sum(d == 0 for d in self.loss_abs),
            "loss_max_abs_diff": max(self.loss_abs),
            "loss_max_rel_diff": max(self.loss_rel),
            "loss_step0_abs_diff": self.loss_abs[0],
        }


def reverse_ids(anno: Path) -> None:
    """Renumber a COCO file's images so that ppdet (which sorts by id) reads them in reverse order."""
    coco = json.loads(anno.read_text())
    n = len(coco["images"])
    for img in coco["images"]:
        img["id"] = n + 1 - img["id"]
    for ann in coco["annotations"]:
        ann["image_id"] = n + 1 - ann["image_id"]
    anno.write_text(json.dumps(coco))


def control_case(root: Path, steps: int) -> Compared:
    """ppdet vs ppdet, file order vs reversed file order, from the same weights (4 images, batch 4)."""
    case = write_case(root / CONTROL, n_train=4, batch=4, epoch=steps, max_epochs=max(2 * steps, 8), warmup=3)
    first = run_ppdet(case)
    reverse_ids(case.data / "train.json")
    second = run_ppdet(case, initial=first.initial)
    return Compared(CONTROL, steps, first.lrs, second.lrs, first.losses, second.losses)


def compare_case(root: Path, name: str, steps: int) -> Compared:
    """Run one case through ppdet's Trainer and ours for ``steps`` optimizer steps."""
    if name == CONTROL:
        return control_case(root, steps)
    n, batch, seed, optimizer = CASES[name]
    seed = seed_in_file_order(n, steps) if seed is None else seed
    case = write_case(
        root / name, n_train=n, batch=batch, epoch=steps, max_epochs=max(2 * steps, 8), warmup=3,
        optimizer=optimizer,
    )  # fmt: skip
    theirs = run_ppdet(case)
    ours = run_ours(case, theirs.initial, steps, [f"run.seed={seed}"])
    return Compared(name, steps, theirs.lrs, ours.lrs, theirs.losses, ours.losses)


def _table(results: list[Compared]) -> str:
    lines = [
        "| case | step | LR ppdet | LR ours | loss ppdet | loss ours | abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for i in range(r.steps):
            lines.append(
                f"| {r.name} | {i} | {r.lr_ppdet[i]!r} | {r.lr_ours[i]!r} | {r.loss_ppdet[i]:.7f} | "
                f"{r.loss_ours[i]:.7f} | {r.loss_abs[i]:.2e} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_det_sbs"))
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    results = [compare_case(args.out, name, args.steps) for name in [*CASES, CONTROL]]
    print(_table(results))
    print(json.dumps([r.summary() for r in results], indent=2))


if __name__ == "__main__":
    main()
