"""PaddleOCR's ``Optimizer.regularizer: {name: L2, factor: F}`` gives the same parameter updates under
Warmstart as PaddleOCR's build (``paddle.optimizer.<Name>(weight_decay=L2Decay(F))``: the L2 term
``F * w`` added to the gradient before Adam's moments, i.e. coupled, not AdamW's decoupled decay)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from app.config.schema import OptimConfig
from app.config.typed import from_data
from app.tasks.ocr.translate import translate
from app.train.setup import build_optimizer

TASK = {"kind": "ocr_rec", "options": {"data_dir": "d", "builtin_dict": "en_dict.txt"}}
FACTOR = 0.05  # large, so the coupled/decoupled difference is far above float noise


def tiny(seed: int) -> paddle.nn.Layer:
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        return paddle.nn.Sequential(paddle.nn.Linear(6, 5), paddle.nn.ReLU(), paddle.nn.Linear(5, 3))


def train(model: paddle.nn.Layer, opt: paddle.optimizer.Optimizer, steps: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = paddle.to_tensor(rng.normal(size=(4, 6)).astype("float32"))
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
    return [p.numpy() for p in model.parameters()]


def ours(name: str) -> list[np.ndarray]:
    raw = {
        "Optimizer": {
            "name": name,
            "regularizer": {"name": "L2", "factor": FACTOR},
            "lr": {"name": "Const", "learning_rate": 0.01},
        }
    }
    data = translate({"task": TASK, **raw})
    cfg = from_data(OptimConfig, data["optim"], "optim")
    model = tiny(1)
    return train(model, build_optimizer(cfg, paddle.optimizer.lr.LambdaDecay(0.01, lambda t: 1.0), model))


def paddleocr(name: str, weight_decay: object) -> list[np.ndarray]:
    model = tiny(1)
    lr = paddle.optimizer.lr.LambdaDecay(0.01, lambda t: 1.0)
    cls = {"Adam": paddle.optimizer.Adam, "Momentum": paddle.optimizer.Momentum}[name]
    return train(model, cls(learning_rate=lr, parameters=model.parameters(), weight_decay=weight_decay))


@pytest.mark.parametrize("name", ["Adam", "Momentum"])
def test_l2_regularizer_updates_equal_paddleocr(name: str) -> None:
    got = ours(name)
    ref = paddleocr(name, paddle.regularizer.L2Decay(FACTOR))
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    plain = paddleocr(name, None)
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, plain, strict=True)) > 1e-5


def test_l2_on_adam_is_not_decoupled_decay() -> None:
    got = ours("Adam")
    model = tiny(1)
    lr = paddle.optimizer.lr.LambdaDecay(0.01, lambda t: 1.0)
    decoupled = train(
        model, paddle.optimizer.AdamW(learning_rate=lr, parameters=model.parameters(), weight_decay=FACTOR)
    )
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, decoupled, strict=True)) > 1e-6
