"""A synthetic MLP task (a stack of square Linear layers on random data) sized to a chosen state size.

Registered as ``task.kind: bench_mlp`` when this module is imported (benchmarks only; the product's
registry file is untouched). Options: ``width``, ``layers``, ``classes``, ``samples``, ``marks`` (a file
that gets one ``step wall_time perf_counter`` line per optimizer step, for timing from another process).
Every step's wall-clock time is also kept in ``task.stamps``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn

from app.config.typed import from_data
from app.tasks.base import TASKS

__all__ = ["SynthOptions", "SynthNet", "SynthTask", "KIND"]

KIND = "bench_mlp"
TASKS.setdefault(KIND, "bench.synth:SynthTask")


@dataclass
class SynthOptions:
    width: int = 256
    layers: int = 2
    classes: int = 10
    samples: int = 512
    marks: str = ""

    def validate(self, path: str) -> None:
        return None


class SynthNet(nn.Layer):
    """``layers`` x (Linear(width, width) + ReLU) -> Linear(width, classes)."""

    def __init__(self, width: int, layers: int, classes: int) -> None:
        super().__init__()
        blocks: list[nn.Layer] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, width), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.body(x))


class SynthTask:
    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:  # nothing to unpickle
        self.opts: SynthOptions = from_data(SynthOptions, options, "task.options")
        rng = np.random.default_rng(1234)  # data independent of the run seed: every run sees the same
        o = self.opts
        self.x = rng.standard_normal((o.samples, o.width), dtype=np.float32)
        self.y = rng.integers(0, o.classes, size=o.samples).astype("int64")
        self.data_source = f"synthetic gaussian {o.samples}x{o.width}"
        self.stamps: list[float] = []
        self._marks = open(Path(o.marks), "a") if o.marks else None  # noqa: SIM115  (kept open for speed)

    def build_model(self) -> nn.Layer:
        return SynthNet(self.opts.width, self.opts.layers, self.opts.classes)

    def train_size(self) -> int:
        return len(self.y)

    def train_arrays(self, indices: list[int], epoch: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices)
        return self.x[idx], self.y[idx]

    def to_batch(self, arrays: tuple[np.ndarray, np.ndarray]) -> tuple[paddle.Tensor, paddle.Tensor]:
        return paddle.to_tensor(arrays[0]), paddle.to_tensor(arrays[1])

    def loss(self, model: nn.Layer, batch: tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    @paddle.no_grad()
    def evaluate(self, model: nn.Layer) -> dict[str, float]:
        x, y = paddle.to_tensor(self.x[:64]), paddle.to_tensor(self.y[:64])
        logits = model(x)
        acc = float((logits.argmax(axis=-1).numpy() == self.y[:64]).mean())
        return {"eval_loss": float(nn.functional.cross_entropy(logits, y)), "accuracy": acc}

    def after_step(self, model: nn.Layer, step: int) -> None:
        now = time.perf_counter()
        self.stamps.append(now)
        if self._marks is not None:
            self._marks.write(f"{step} {time.time():.6f} {now:.6f}\n")
            self._marks.flush()
