"""The small protocol every task adapter implements, and the registry that finds one by name.

A task supplies a model, datasets, a loss and an evaluation; the shared loop, schedule and checkpoints
know nothing else about it. Datasets return numpy arrays (not paddle tensors: see FIELD_NOTES on
DataLoader workers), and ``collate`` turns a list of samples into a batch of paddle tensors.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from app.config.schema import TaskConfig
from app.config.typed import suggest
from app.errors import ConfigError

__all__ = ["Task", "TASKS", "build_task"]


@runtime_checkable
class Task(Protocol):
    #: Recorded in lineage (meta.json "data_source") unless run.data_source is set.
    data_source: str

    def build_model(self) -> Any:
        """A fresh ``paddle.nn.Layer``; parameter names must be stable across processes."""

    def train_size(self) -> int: ...

    def train_samples(self, indices: list[int]) -> Any:
        """The batch (paddle tensors) for these training-set indices."""

    def loss(self, model: Any, batch: Any) -> Any:
        """Scalar loss tensor for one micro-batch."""

    def evaluate(self, model: Any) -> dict[str, float]:
        """Metrics on the evaluation set (model is in eval mode while called)."""


#: name -> "module:factory"; the factory takes the task options dict and returns a Task.
TASKS: dict[str, str] = {
    "digits": "app.tasks.digits:DigitsTask",
}


def build_task(cfg: TaskConfig, seed: int) -> Task:
    target = TASKS.get(cfg.kind)
    if target is None:
        raise ConfigError(
            f"task.kind: unknown task {cfg.kind!r}{suggest(cfg.kind, TASKS)} (known: {', '.join(sorted(TASKS))})"
        )
    module, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    return factory(cfg.options, seed=seed)
