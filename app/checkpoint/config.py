"""Typed configuration of checkpoint policy (the ``checkpoint:`` section): when to save, what to keep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.config.typed import limits
from app.errors import ConfigError
from app.store.config import check_uri_scheme

__all__ = ["CheckpointConfig", "MAX_MINUTES"]

#: Upper bound of the minute fields (a year): larger ones overflow date arithmetic.
MAX_MINUTES = 525_600.0


@dataclass
class CheckpointConfig:
    #: Where committed checkpoints live: a folder, file://, s3://bucket/prefix or oss://bucket/prefix.
    #: Empty = ``<run.dir>/checkpoints``.
    uri: str = ""
    #: Save every this many optimizer steps (null = not by steps).
    every_steps: int | None = field(default=None, metadata=limits(gt=0))
    #: Save when this many minutes passed since the last save (null = not by time).
    every_minutes: float | None = field(default=None, metadata=limits(gt=0, le=MAX_MINUTES))
    #: Serialize/hash/upload in a background worker (training continues after a host snapshot).
    async_save: bool = True
    #: Keep the newest N committed checkpoints; None keeps all.
    keep_last: int | None = field(default=3, metadata=limits(ge=1))
    #: Also keep the best K by ``best_metric`` (0 = none).
    keep_best: int = field(default=1, metadata=limits(ge=0))
    #: Metric (a key of meta.json's ``metrics``) used for best-K retention and best tracking; None = the
    #: task's metric (the trainer fills it in; left None, best-K retention is off).
    best_metric: str | None = None
    #: Whether a larger (max) or smaller (min) best_metric is better.
    best_mode: Literal["max", "min"] = "max"
    #: Uncommitted leftovers (no manifest) whose save started longer ago than this are deleted by gc and
    #: by retention after each commit. Age comes from the folder's ``.started`` marker, not mtimes.
    leftover_minutes: float = field(default=60.0, metadata=limits(ge=0, le=MAX_MINUTES))

    def validate(self, path: str) -> None:
        check_uri_scheme(f"{path}.uri", self.uri)
        if self.keep_last is not None and self.keep_last < 1:
            raise ConfigError(f"{path}.keep_last: must be >= 1 or null (keep all), got {self.keep_last}")
        if self.keep_best < 0:
            raise ConfigError(f"{path}.keep_best: must be >= 0, got {self.keep_best}")
        if self.leftover_minutes < 0:
            raise ConfigError(f"{path}.leftover_minutes: must be >= 0, got {self.leftover_minutes}")
        for name in ("every_steps", "every_minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{path}.{name}: must be > 0, got {value}")
