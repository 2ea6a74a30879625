"""In-process training sessions of the synthetic task, built by the real trainer (``app.train.start``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import bench.synth  # noqa: F401  (registers task.kind bench_mlp)
from app.config import load_config
from app.train.loop import Session
from app.train.preempt import StopRequest
from app.train.start import prepare
from app.train.state import model_arrays, optimizer_arrays

__all__ = ["open_session", "host_arrays", "TimedSnapshot"]


def open_session(overrides: list[str]) -> Session:
    """``warmstart train``'s session for these ``--set`` items (no YAML file, no WARMSTART_* env)."""
    return prepare(load_config(None, overrides, env={}), StopRequest())


def host_arrays(s: Session) -> list[np.ndarray]:
    """The tensors a checkpoint holds (model + optimizer), as host arrays: the copy benchmark's input."""
    return [*model_arrays(s.net).values(), *optimizer_arrays(s.optimizer, s.net).values()]


class TimedSnapshot:
    """Wraps ``session.build_snapshot`` to record how long the host snapshot alone took."""

    def __init__(self, inner: Callable[[Session], object]) -> None:
        self.inner = inner
        self.last = 0.0

    def __call__(self, s: Session) -> object:
        started = time.perf_counter()
        snap = self.inner(s)
        self.last = time.perf_counter() - started
        return snap


def run_dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path
