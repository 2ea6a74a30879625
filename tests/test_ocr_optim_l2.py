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


def _clipped_ours(clip: dict[str, float]) -> tuple[list[np.ndarray], OptimConfig]:
    raw = {"Optimizer": {"name": "Adam", "lr": {"name": "Const", "learning_rate": 0.01}, **clip}}
    cfg = from_data(OptimConfig, translate({"task": TASK, **raw})["optim"], "optim")
    model = tiny(1)
    return train(
        model, build_optimizer(cfg, paddle.optimizer.lr.LambdaDecay(0.01, lambda t: 1.0), model)
    ), cfg


def _clipped_paddleocr(grad_clip: object) -> list[np.ndarray]:
    model = tiny(1)
    lr = paddle.optimizer.lr.LambdaDecay(0.01, lambda t: 1.0)
    return train(
        model, paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters(), grad_clip=grad_clip)
    )


@pytest.mark.parametrize(
    ("clip", "kind", "theirs"),
    [
        ({"clip_norm": 0.01}, "per_tensor", lambda: paddle.nn.ClipGradByNorm(0.01)),
        ({"clip_norm_global": 0.01}, "global", lambda: paddle.nn.ClipGradByGlobalNorm(0.01)),
        # PaddleOCR's build: clip_norm wins when both are given
        ({"clip_norm": 0.01, "clip_norm_global": 5.0}, "per_tensor", lambda: paddle.nn.ClipGradByNorm(0.01)),
    ],
)
def test_gradient_clipping_equals_paddleocrs(clip: dict, kind: str, theirs) -> None:  # noqa: ANN001
    got, cfg = _clipped_ours(clip)
    assert (cfg.grad_clip, cfg.grad_clip_norm) == (kind, 0.01)
    want = _clipped_paddleocr(theirs())
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _clipped_paddleocr(
        paddle.nn.ClipGradByGlobalNorm(0.01) if kind == "per_tensor" else paddle.nn.ClipGradByNorm(0.01)
    )
    assert any(not np.array_equal(a, b) for a, b in zip(got, other, strict=True))  # the kind matters here
