"""Typed configuration of checkpoint policy (the ``checkpoint:`` section): when to save, what to keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CheckpointConfig"]


@dataclass
class CheckpointConfig:
    #: Where committed checkpoints live: a folder, file://, s3://bucket/prefix or oss://bucket/prefix.
    #: Empty = ``<run.dir>/checkpoints``.
    uri: str = ""
    every_steps: int | None = None
    every_minutes: float | None = None
    #: Serialize/hash/upload in a background worker (training continues after a host snapshot).
    async_save: bool = True
    keep_last: int | None = 3
    keep_best: int = 1
    #: Metric used for best-K retention and best tracking; None = the task's metric.
    best_metric: str | None = None
    best_mode: Literal["max", "min"] = "max"
    #: Uncommitted leftovers older than this are deleted by gc / at startup.
    leftover_minutes: float = 60.0
