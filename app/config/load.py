"""Resolve a configuration: YAML file, then documented WARMSTART_* env vars, then ``--set`` overrides.

Precedence (lowest to highest): defaults < YAML file < environment < command-line ``--set``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from app.config.schema import Config
from app.config.typed import from_data, to_data
from app.errors import ConfigError

__all__ = ["ENV_VARS", "load_config", "parse_set", "config_hash", "config_to_yaml"]

#: Documented environment variables and the config key each one sets.
ENV_VARS: dict[str, str] = {
    "WARMSTART_RUN_DIR": "run.dir",
    "WARMSTART_RUN_NAME": "run.name",
    "WARMSTART_SEED": "run.seed",
    "WARMSTART_CHECKPOINT_URI": "checkpoint.uri",
    "WARMSTART_INIT_FROM": "init.from",
    "WARMSTART_INIT_MODE": "init.mode",
    "WARMSTART_TOTAL_STEPS": "schedule.total_steps",
    "WARMSTART_BASE_LR": "schedule.base_lr",
    "WARMSTART_S3_ENDPOINT_URL": "store.endpoint_url",
    "WARMSTART_S3_REGION": "store.region",
    "WARMSTART_S3_ADDRESSING_STYLE": "store.addressing_style",
    "WARMSTART_GRACE_SECONDS": "preempt.grace_seconds",
    "WARMSTART_SPOT_PROVIDER": "preempt.spot.provider",
    "WARMSTART_SPOT_ENDPOINT": "preempt.spot.endpoint",
}


def _scalar(text: str) -> Any:
    """Parse an override value the way YAML would ("0.1" -> 0.1, "true" -> True, "[1, 2]" -> list)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_set(item: str, source: str = "--set") -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source} {item!r}: expected KEY=VALUE, e.g. schedule.base_lr=0.01")
    return key.strip(), _scalar(value)


def _assign(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"{source} {dotted}: {where} is not a mapping (it is {child!r})")
        node = child
    node[parts[-1]] = value


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist", hint="check --config") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {str(p)!r} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {str(p)!r}: {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(
    path: str | Path | None,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load, override and validate a configuration. Raises :class:`ConfigError` naming the field."""
    data = _read_yaml(path) if path else {}
    data = copy.deepcopy(data)
    environ = os.environ if env is None else env
    for var, key in ENV_VARS.items():
        if var in environ:
            _assign(data, key, _scalar(environ[var]), f"env {var} ->")
    for item in overrides:
        key, value = parse_set(item)
        _assign(data, key, value, "--set")
    from app.tasks.base import translate_config

    return from_data(Config, translate_config(data))


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_data(cfg), sort_keys=False, default_flow_style=False)


def config_hash(cfg: Config) -> str:
    """sha256 of the canonical JSON of the resolved config (recorded in checkpoint lineage)."""
    blob = json.dumps(to_data(cfg), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
