"""Side by side with PaddleDetection's own ``Trainer`` (a small version of bench/det_side_by_side.py).

The same ppdet config (shipped PicoDet-S, a ppdet LearningRate and OptimizerBuilder, augmentation off),
the same initial weights and the same generated images, through ppdet's real ``Trainer`` and through our
session's ``train_step``: the LR the optimizer applies is the same at every step, and the loss is the same
float at every step whenever the images reach the model in the same order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import app  # noqa: F401  (zlib before paddle)
from app.tasks.det.workspace import _workspace
from bench.det_side_by_side import compare_case
from bench.ppdet_case import assert_same_lr

_workspace()

STEPS = 5  # 3 warmup steps (ppdet LinearWarmup), then the cosine; the assigner switches at step 2


@pytest.mark.parametrize("name", ["one_image", "same_order", "same_order_adamw"])
def test_same_lr_and_loss_as_ppdet_trainer(tmp_path: Path, name: str) -> None:
    r = compare_case(tmp_path, name, STEPS)
    assert len(r.lr_ppdet) == len(r.loss_ours) == STEPS
    assert_same_lr(r.lr_ours, r.lr_ppdet)
    assert r.lr_ppdet[:4] == pytest.approx([0.002, 0.008, 0.014, 0.02], rel=1e-12)  # ppdet's warmup ran
    assert r.loss_ours == pytest.approx(r.loss_ppdet, rel=1e-6, abs=0)  # measured: bit-identical
    assert len(set(r.loss_ppdet)) == STEPS  # the model trained: every step's loss is new


def test_other_order_in_batch_same_first_loss(tmp_path: Path) -> None:
    """4 images in one batch, in our seeded order vs ppdet's file order: the first step sees the same
    inputs and weights (equal up to summation order); later steps drift as ppdet's own do when its file
    order changes (bench/det_side_by_side.py, control case)."""
    r = compare_case(tmp_path, "other_order", 1)
    assert_same_lr(r.lr_ours, r.lr_ppdet)
    assert r.loss_ours[0] == pytest.approx(r.loss_ppdet[0], rel=1e-6, abs=0)
