"""A benchmark task whose data and compute both cost real CPU time: JPEG decode + resize + seeded flip +
normalize (OpenCV) per sample, and a small conv net per step.

Registered as ``task.kind: bench_feed`` when imported (benchmarks only). Options: ``samples`` (in-memory
JPEGs, generated once from a fixed seed), ``width``/``height`` (their size), ``size`` (the square the net
sees), ``channels``/``layers`` (conv net width and depth: the compute knob), ``preload`` (serve one batch
decoded up front for every step, whatever the indices: the loop's compute alone, with no data work). Every optimizer
step's ``perf_counter`` is kept in ``task.stamps``, and the CPU seconds used so far by this process and by
its children (the data workers) in ``task.cpu``.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import paddle
import paddle.nn as nn

from app.config.typed import from_data
from app.tasks.base import TASKS
from app.train.rng import seeded

__all__ = ["FeedOptions", "FeedTask", "KIND", "jpegs", "children_cpu", "process_cpu"]

KIND = "bench_feed"
TASKS.setdefault(KIND, "bench.feed_task:FeedTask")
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's live children (the data workers)."""
    pids = [int(p) for t in Path("/proc/self/task").iterdir() for p in (t / "children").read_text().split()]
    return sum(process_cpu(p) for p in pids)


@dataclass
class FeedOptions:
    samples: int = 32
    width: int = 640
    height: int = 480
    size: int = 320
    channels: int = 16
    layers: int = 3
    classes: int = 10
    preload: bool = False

    def validate(self, path: str) -> None:
        return None


def jpegs(n: int, width: int, height: int, seed: int = 1234) -> list[bytes]:
    """``n`` photo-like JPEGs (smooth colour fields plus noise, quality 90), the same for every call."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 24, img.shape, dtype=np.uint8))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


class FeedNet(nn.Layer):
    """``layers`` stride-2 3x3 convs with ReLU, global average pool, linear head."""

    def __init__(self, channels: int, layers: int, classes: int) -> None:
        super().__init__()
        blocks: list[nn.Layer] = []
        for i in range(layers):
            blocks += [nn.Conv2D(3 if i == 0 else channels, channels, 3, stride=2, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.body(x).mean(axis=[2, 3]))


class FeedTask:
    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:  # nothing to unpickle
        self.opts: FeedOptions = from_data(FeedOptions, options, "task.options")
        self.seed = seed
        o = self.opts
        self.jpegs = jpegs(o.samples, o.width, o.height)
        self.labels = np.random.default_rng(99).integers(0, o.classes, o.samples).astype("int64")
        self.data_source = f"{o.samples} generated {o.width}x{o.height} JPEGs in memory"
        self.stamps: list[float] = []
        self.cpu: list[tuple[float, float]] = []
        self._ready: dict[int, np.ndarray] = {}  # batch size -> the one preloaded batch

    def _decode(self, index: int, epoch: int) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(self.jpegs[index], np.uint8), cv2.IMREAD_COLOR)
        img = cv2.resize(img, (self.opts.size, self.opts.size), interpolation=cv2.INTER_LINEAR)
        with seeded(self.seed, epoch, index):
            if random.random() < 0.5:
                img = img[:, ::-1]
        return ((img.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)

    def build_model(self) -> nn.Layer:
        return FeedNet(self.opts.channels, self.opts.layers, self.opts.classes)

    def train_size(self) -> int:
        return self.opts.samples

    def train_arrays(self, indices: list[int], epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.opts.preload:
            n = len(indices)
            if n not in self._ready:  # made at the first step, which the bench does not time
                self._ready[n] = np.stack([self._decode(i % self.opts.samples, 0) for i in range(n)])
            return self._ready[n], self.labels[:n]
        return np.stack([self._decode(i, epoch) for i in indices]), self.labels[np.asarray(indices)]

    def to_batch(self, arrays: tuple[np.ndarray, np.ndarray]) -> tuple[paddle.Tensor, paddle.Tensor]:
        return paddle.to_tensor(arrays[0]), paddle.to_tensor(arrays[1])

    def loss(self, model: nn.Layer, batch: tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    @paddle.no_grad()
    def evaluate(self, model: nn.Layer) -> dict[str, float]:
        x, y = self.to_batch(self.train_arrays([0, 1], 0))
        return {"eval_loss": float(nn.functional.cross_entropy(model(x), y))}

    def after_step(self, model: nn.Layer, step: int) -> None:
        self.stamps.append(time.perf_counter())
        self.cpu.append((time.process_time(), children_cpu()))
