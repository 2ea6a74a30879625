"""Lineage recorded in every checkpoint's ``meta.json``: who, when, which code and Paddle built it.

The trainer supplies config, config_hash, metrics, data_source, notes and parent; this module adds the
fields it cannot know. The git commit comes from ``WARMSTART_GIT_COMMIT`` (set by image builds) or, in a
checkout, from ``git rev-parse``; it is None when neither is available.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import importlib.metadata
import os
import subprocess
from pathlib import Path
from typing import Any

from app import __version__
from app.redact import redact_data

__all__ = ["utc_now", "parse_utc", "current_user", "code_version", "paddle_version", "with_lineage"]


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a ``Z`` suffix, to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers often run as a uid without a passwd entry
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    if os.environ.get("WARMSTART_GIT_COMMIT"):
        return os.environ["WARMSTART_GIT_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def code_version() -> dict[str, str | None]:
    return {"app": __version__, "git_commit": _git_commit()}


@functools.lru_cache(maxsize=1)
def paddle_version() -> str | None:
    """Read from package metadata, so recording it never imports Paddle."""
    for dist in ("paddlepaddle", "paddlepaddle-gpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def with_lineage(meta: dict[str, Any], step: int) -> dict[str, Any]:
    """A copy of the trainer's ``meta`` with time, user, code and Paddle versions added.

    Every string is redacted (:mod:`app.redact`): credentials in an endpoint URL, a presigned
    ``init.from`` or a parent URI never reach a checkpoint's meta.json.
    """
    out = redact_data(dict(meta))
    out.setdefault("metrics", {})
    out["step"] = step
    out["utc_time"] = utc_now()
    out["user"] = current_user()
    out["code_version"] = code_version()
    out["paddle_version"] = paddle_version()
    return out
