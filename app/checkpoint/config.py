"""Typed configuration of checkpoint policy (the ``checkpoint:`` section): when to save, what to keep."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from app.checkpoint.layout import TAG_NAME_HINT, TAG_NAME_RE
from app.config.typed import limits
from app.errors import ConfigError
from app.store.config import check_uri_scheme

__all__ = ["CheckpointConfig", "MAX_MINUTES", "check_policy"]

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
    #: At the end of training, tag the committed step with the best ``train.metric`` under this name
    #: (re-pointed if it exists), e.g. "best": then ``warmstart export --from URI#best`` exports it and
    #: retention keeps it. null = no tag.
    tag_best: str | None = None

    def validate(self, path: str) -> None:
        check_uri_scheme(f"{path}.uri", self.uri)
        if self.tag_best is not None and not TAG_NAME_RE.fullmatch(self.tag_best):
            raise ConfigError(
                f"{path}.tag_best: invalid tag name {self.tag_best!r}", hint=f"{TAG_NAME_HINT}, e.g. best"
            )
        check_policy(self, {k: f"{path}.{k}" for k in _POLICY_FIELDS})


_POLICY_FIELDS = ("keep_last", "keep_best", "best_mode", "leftover_minutes")


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def check_policy(cfg: CheckpointConfig, names: Mapping[str, str] | None = None) -> CheckpointConfig:
    """The one validation of a retention policy, whoever builds it (config load, ``ckpt gc`` flags).

    ``names`` maps fields to how the user spelled them (``{"keep_last": "--keep-last"}``) so the message
    names what to fix. Raises ConfigError (exit 2) before anything is read or deleted.
    """
    name = {f: f for f in _POLICY_FIELDS} | dict(names or {})
    if cfg.keep_last is not None and (_not_int(cfg.keep_last) or cfg.keep_last < 1):
        raise ConfigError(
            f"{name['keep_last']}: must be an integer >= 1 or null (keep all), got {cfg.keep_last}",
            hint="the newest checkpoints are what a resume needs; gc never deletes all of them",
        )
    if _not_int(cfg.keep_best) or cfg.keep_best < 0:
        raise ConfigError(f"{name['keep_best']}: must be an integer >= 0, got {cfg.keep_best}")
    if cfg.best_mode not in ("max", "min"):
        raise ConfigError(f"{name['best_mode']}: must be 'max' or 'min', got {cfg.best_mode!r}")
    minutes = cfg.leftover_minutes
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 <= minutes <= MAX_MINUTES:
        raise ConfigError(
            f"{name['leftover_minutes']}: must be a number in [0, {MAX_MINUTES:g}] (minutes), got {minutes}"
        )
    return cfg
