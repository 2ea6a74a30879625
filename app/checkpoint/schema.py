"""Schemas of the JSON files in a checkpoint root: strict types and required keys, checked when read.

Each ``check_*`` function takes an already-parsed value (see :mod:`app.checkpoint.jsonread`) and the
file's URI, and raises a :class:`CheckpointError` naming the file and the key that is wrong. A checkpoint
whose trainer state or meta fails its schema is treated like one whose sha256 does not match: skipped
with a warning on resume, reported by ``ckpt verify``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from app.checkpoint.jsonread import INT_LIMIT, json_object
from app.checkpoint.labels import check_label_record
from app.errors import CheckpointError

__all__ = [
    "SHA256_RE",
    "FILE_NAME_RE",
    "need",
    "need_int",
    "need_str",
    "check_trainer_state",
    "check_resume_state",
    "check_meta",
    "check_tag",
]

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: A file inside a step folder: a plain name, no separators, no leading dot, no control characters.
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Python's Mersenne Twister state: 624 words plus the position; numpy's: 624 words.
_PY_RNG_WORDS = 625
_NP_RNG_WORDS = 624
_RESUME_KEYS = ("step", "data", "scheduler", "rng")


def _bad(where: str, key: str, expected: str, value: Any) -> CheckpointError:
    shown = repr(value) if not isinstance(value, dict | list) else f"a {type(value).__name__}"
    return CheckpointError(f"{where}: {key} must be {expected}, found {shown[:60]}")


def need(data: Mapping[str, Any], key: str, where: str, path: str = "") -> Any:
    """``data[key]``; a missing key is a CheckpointError naming ``path + key``."""
    if key not in data:
        raise CheckpointError(f"{where}: required key {path + key!r} is missing")
    return data[key]


def need_int(value: Any, where: str, key: str, low: int = 0, high: int = INT_LIMIT - 1) -> int:
    """A JSON integer (never a bool, float or string) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(where, key, f"an integer in [{low}, {high}]", value)
    return value


def need_str(value: Any, where: str, key: str, limit: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(where, key, f"a string of at most {limit} characters", value)
    return value


def _need_float(value: Any, where: str, key: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(where, key, "a finite number" + (" or null" if allow_none else ""), value)
    return float(value)


def _need_object(value: Any, where: str, key: str, *, allow_none: bool = False) -> dict | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, dict):
        raise _bad(where, key, "an object" + (" or null" if allow_none else ""), value)
    return value


def _need_words(value: Any, where: str, key: str, count: int) -> None:
    if not isinstance(value, list) or len(value) != count:
        raise _bad(where, key, f"a list of {count} integers", value)
    for word in value:
        need_int(word, where, f"{key}[]", 0, (1 << 32) - 1)


def _check_rng(rng: Any, where: str) -> None:
    """The shape :func:`app.train.rng.capture` writes: Python's and numpy's Mersenne Twister states."""
    rng = _need_object(rng, where, "rng")
    py = _need_object(need(rng, "python", where, "rng."), where, "rng.python")
    need_int(need(py, "version", where, "rng.python."), where, "rng.python.version", 3, 3)
    _need_words(need(py, "state", where, "rng.python."), where, "rng.python.state", _PY_RNG_WORDS)
    if py["state"][-1] > _NP_RNG_WORDS:
        raise _bad(where, "rng.python.state[-1] (position)", f"at most {_NP_RNG_WORDS}", py["state"][-1])
    _need_float(need(py, "gauss", where, "rng.python."), where, "rng.python.gauss", allow_none=True)
    np_ = _need_object(need(rng, "numpy", where, "rng."), where, "rng.numpy")
    if need(np_, "name", where, "rng.numpy.") != "MT19937":
        raise _bad(where, "rng.numpy.name", "'MT19937'", np_["name"])
    _need_words(need(np_, "keys", where, "rng.numpy."), where, "rng.numpy.keys", _NP_RNG_WORDS)
    need_int(need(np_, "pos", where, "rng.numpy."), where, "rng.numpy.pos", 0, _NP_RNG_WORDS)
    need_int(need(np_, "has_gauss", where, "rng.numpy."), where, "rng.numpy.has_gauss", 0, 1)
    _need_float(need(np_, "cached", where, "rng.numpy."), where, "rng.numpy.cached")


def _check_scheduler(value: Any, where: str, key: str) -> None:
    """Every warmstart schedule state has an integer ``last_epoch``; a wrapped one nests ``inner``."""
    sched = _need_object(value, where, key)
    need_int(need(sched, "last_epoch", where, f"{key}."), where, f"{key}.last_epoch", -1)
    if "inner" in sched:
        _check_scheduler(sched["inner"], where, f"{key}.inner")


def _check_best(value: Any, where: str) -> None:
    best = _need_object(value, where, "best", allow_none=True) or {}
    if best.get("value") is not None and (
        isinstance(best["value"], bool) or not isinstance(best["value"], int | float)
    ):
        raise _bad(where, "best.value", "a number or null", best["value"])
    if "step" in best:
        need_int(best["step"], where, "best.step")
    if best.get("metric") is not None:
        need_str(best["metric"], where, "best.metric", 256)


def check_trainer_state(value: Any, where: str, step: int) -> dict[str, Any]:
    """Types of every key the trainer writes that is present; ``step`` must equal the manifest's."""
    state = json_object(value, where)
    if "step" in state and need_int(state["step"], where, "step") != step:
        raise CheckpointError(f"{where}: step is {state['step']}, but the manifest is for step {step}")
    if "epoch" in state:
        need_int(state["epoch"], where, "epoch")
    if "data" in state:
        data = _need_object(state["data"], where, "data")
        for key in ("epoch", "samples_in_epoch"):
            need_int(need(data, key, where, "data."), where, f"data.{key}")
    for key in ("world_size", "micro_batch", "grad_accum_steps", "global_batch", "total_steps"):
        if key in state:
            need_int(state[key], where, key, 1)
    if "scheduler" in state:
        _check_scheduler(state["scheduler"], where, "scheduler")
    if "amp_scaler" in state:
        _need_object(state["amp_scaler"], where, "amp_scaler", allow_none=True)
    if "best" in state:
        _check_best(state["best"], where)
    if "rng" in state:
        _check_rng(state["rng"], where)
    return state


def check_resume_state(state: Mapping[str, Any], where: str) -> None:
    """What an exact resume needs on top of :func:`check_trainer_state`: these keys present."""
    for key in _RESUME_KEYS:
        need(state, key, where)


def check_meta(value: Any, where: str, step: int) -> dict[str, Any]:
    """meta.json: an object; ``metrics`` maps names to numbers (NaN allowed) or null; ``step`` matches;
    ``label_space``, when present, is bounded and its names match their sha256."""
    meta = json_object(value, where)
    if "step" in meta and need_int(meta["step"], where, "step") != step:
        raise CheckpointError(f"{where}: step is {meta['step']}, but the manifest is for step {step}")
    metrics = _need_object(meta.get("metrics", {}), where, "metrics", allow_none=True) or {}
    for name, number in metrics.items():
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise _bad(where, f"metrics.{name}", "a number or null", number)
    for key in ("user", "utc_time", "config_hash", "data_source", "notes", "parent", "paddle_version"):
        if meta.get(key) is not None:
            need_str(meta[key], where, key, 1 << 16)
    for key in ("config", "code_version", "init_source"):
        if key in meta:
            _need_object(meta[key], where, key, allow_none=True)
    if meta.get("label_space") is not None:  # the task's label names (app.checkpoint.labels)
        check_label_record(meta["label_space"], where)
    return meta


def check_tag(value: Any, where: str, name: str) -> dict[str, Any]:
    """A tag record: ``step`` (int), ``manifest_sha256`` (64 hex), ``tag`` equal to its file name."""
    record = json_object(value, where)
    need_int(need(record, "step", where), where, "step")
    sha = need(record, "manifest_sha256", where)
    if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
        raise _bad(where, "manifest_sha256", "64 lower-case hex digits", sha)
    if record.get("tag", name) != name:
        raise _bad(where, "tag", f"{name!r} (the file name)", record["tag"])
    for key in ("uri", "user", "utc_time", "note"):
        if record.get(key) is not None:
            need_str(record[key], where, key, 1 << 16)
    return record
