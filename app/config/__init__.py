"""Configuration: typed dataclasses and the YAML/env/--set loader.

The names below are loaded on first use (PEP 562), so that component configs (``app.store.config``,
``app.schedule.config``, ...) can import :mod:`app.config.typed` without pulling in the root schema,
which imports them: no import circle.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Config", "ENV_VARS", "load_config", "config_hash", "config_to_yaml"]

_LAZY = {
    "Config": "app.config.schema",
    "ENV_VARS": "app.config.load",
    "load_config": "app.config.load",
    "config_hash": "app.config.load",
    "config_to_yaml": "app.config.load",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'app.config' has no attribute {name!r}")
