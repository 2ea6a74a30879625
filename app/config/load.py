"""Resolve a configuration: YAML file, then documented WARMSTART_* env vars, then ``--set`` overrides.

Precedence (lowest to highest): defaults < YAML file < environment < command-line ``--set``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from app.config.schema import Config
from app.config.typed import from_data, to_data
from app.config.yamlsafe import MAX_BYTES, YamlSyntaxError, check_depth, parse_yaml
from app.errors import ConfigError
from app.redact import has_credentials, redact_data
from app.tasks.registry import translate_config

__all__ = ["ENV_VARS", "load_config", "parse_set", "config_hash", "config_to_yaml", "redacted"]

log = logging.getLogger(__name__)

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
    "WARMSTART_PEER_TIMEOUT_SECONDS": "preempt.peer_timeout_seconds",
    "WARMSTART_SPOT_PROVIDER": "preempt.spot.provider",
    "WARMSTART_SPOT_ENDPOINT": "preempt.spot.endpoint",
}


#: Most dotted segments in a ``--set`` / env key (our deepest key has 5).
MAX_KEY_PARTS = 16


def _scalar(text: str, source: str) -> Any:
    """Parse an override value the way YAML would ("0.1" -> 0.1, "true" -> True, "[1, 2]" -> list).

    Text that is not valid YAML stays a string; a value that is valid YAML but breaks a limit (too deep,
    too many aliases, a duplicate key) is an error.
    """
    if text == "":
        return ""
    try:
        return parse_yaml(text, source)
    except YamlSyntaxError:
        return text  # not YAML (e.g. "[x", "*bold*", "="): taken as a plain string, as before


def parse_set(item: str, source: str = "--set") -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source} {_clip(item)!r}: expected KEY=VALUE, e.g. schedule.base_lr=0.01")
    key = key.strip()
    _check_key(key, source)
    return key, _scalar(value, f"{source} {key}")


def _clip(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def _check_key(dotted: str, source: str) -> None:
    parts = dotted.split(".")
    if len(parts) > MAX_KEY_PARTS:
        raise ConfigError(
            f"{source} {_clip(dotted)!r}: more than {MAX_KEY_PARTS} dotted parts; no key is that deep"
        )
    if any(not part.strip() for part in parts):
        raise ConfigError(f"{source} {_clip(dotted)!r}: empty part in a dotted key (e.g. 'a..b' or '.a')")


def _assign(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    _check_key(dotted, source)
    parts = [part.strip() for part in dotted.split(".")]
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"{source} {dotted}: {where} is not a mapping (it is {_clip(repr(child))})")
        node = child
    node[parts[-1]] = value


def _read_text(p: Path) -> str:
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist", hint="check --config") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"config file {str(p)!r}: larger than {MAX_BYTES // 1024} KiB; is it a config?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {str(p)!r} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    data = parse_yaml(_read_text(p), f"config file {str(p)!r}")
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
    data = copy.deepcopy(data)  # safe: parse_yaml capped the depth and the expanded size
    environ = os.environ if env is None else env
    for var, key in ENV_VARS.items():
        if var in environ:
            _assign(data, key, _scalar(environ[var], f"env {var}"), f"env {var} ->")
    for item in overrides:
        key, value = parse_set(item)
        _assign(data, key, value, "--set")
    check_depth(data, "config (YAML, env and --set merged)")
    data = translate_config(data)
    check_depth(data, "config (after the task's translator)")
    cfg = from_data(Config, data)
    warn_credentials(cfg)
    return cfg


def redacted(cfg: Config) -> dict[str, Any]:
    """The plain-data form of ``cfg`` with credentials in URLs masked: what is printed and recorded."""
    return redact_data(to_data(cfg))


_warned = False


def warn_credentials(cfg: Config) -> None:
    """Warn once per process when a URL in the config carries credentials (they are redacted anyway)."""
    global _warned
    fields = _credential_fields(to_data(cfg), "")
    if fields and not _warned:
        _warned = True
        log.warning(
            "%s: credentials in a URL are masked in logs and lineage; for S3/OSS put them in the environment "
            "instead (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET); "
            "an http(s) URL's user:password is sent as Basic auth to that host only",
            ", ".join(fields),
        )


def _credential_fields(data: Any, path: str) -> list[str]:
    if isinstance(data, dict):
        return [f for k, v in data.items() for f in _credential_fields(v, f"{path}.{k}" if path else str(k))]
    if isinstance(data, list):
        return [f for i, v in enumerate(data) for f in _credential_fields(v, f"{path}[{i}]")]
    return [path] if isinstance(data, str) and has_credentials(data) else []


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(redacted(cfg), sort_keys=False, default_flow_style=False)


def config_hash(cfg: Config) -> str:
    """sha256 of the canonical JSON of the resolved, redacted config (recorded in checkpoint lineage).

    Credentials are masked first: they are not part of what was trained, and a hash must not let anyone
    test guesses of a password.
    """
    blob = json.dumps(redacted(cfg), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
