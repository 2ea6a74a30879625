"""The one bounded reader for every JSON file read from a store: size, depth and number limits.

Manifests, trainer states, metas, tags and ``.started`` markers all come through :func:`parse_json`
(or :func:`read_json`, which fetches at most the size cap from the store). Any input that is too large,
nested too deep, not UTF-8, has a duplicate key, a number JSON cannot hold exactly (``1e999``, a
30-digit integer) or NaN/Infinity where the file must not hold them becomes a :class:`CheckpointError`
naming the file — never an OverflowError, RecursionError or ValueError.
"""

from __future__ import annotations

import json
import math
from typing import Any

from app.errors import CheckpointError
from app.store.base import ObjectStore

__all__ = ["MAX_JSON_BYTES", "MAX_DEPTH", "INT_LIMIT", "parse_json", "read_json", "json_object"]

#: Our JSON files are a few KiB (a trainer state with RNG state ~20 KiB); 16 MiB is generous.
MAX_JSON_BYTES = 16 << 20
#: Deepest nesting any file we write reaches is ~6; 64 leaves room for user-supplied config in meta.
MAX_DEPTH = 64
#: Integers must fit a signed 64-bit value (steps, sizes, RNG words).
INT_LIMIT = 1 << 63


class _Invalid(ValueError):
    """Raised inside the JSON hooks; becomes a CheckpointError naming the file."""


def _parse_int(text: str) -> int:
    if len(text) > 20:
        raise _Invalid(f"integer {text[:24]}… is out of range")
    value = int(text)
    if not -INT_LIMIT <= value < INT_LIMIT:
        raise _Invalid(f"integer {text} is out of range (64-bit)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid(f"number {text[:24]} is out of range")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"duplicate key {key!r}")
        out[key] = value
    return out


def _check_tree(value: Any) -> None:
    """Depth cap and strings that can be printed (no lone surrogates), without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _Invalid(f"nested deeper than {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Invalid("a string holds an unpaired surrogate escape") from None


def parse_json(data: bytes, where: str, *, allow_nan: bool = False, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Decode ``data`` (the file ``where``) within the limits; NaN/Infinity only with ``allow_nan``."""
    if len(data) > max_bytes:
        raise CheckpointError(
            f"{where} is larger than the {max_bytes >> 20} MiB cap for this file; not read",
            hint="this is not a file warmstart wrote; move it away",
        )

    def constant(name: str) -> float:
        if not allow_nan:
            raise _Invalid(f"{name} is not allowed in this file")
        return float(name.replace("Infinity", "inf"))

    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=constant,
            object_pairs_hook=_no_duplicates,
        )
        _check_tree(value)
    except RecursionError:
        raise CheckpointError(
            f"{where} is not valid JSON: nested deeper than {MAX_DEPTH} levels",
            hint="this is not a file warmstart wrote; move it away",
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:  # _Invalid and JSONDecodeError are ValueErrors
        raise CheckpointError(
            f"{where} is not valid JSON: {exc}", hint="this is not a file warmstart wrote; move it away"
        ) from None
    return value


def read_json(
    store: ObjectStore, key: str, *, allow_nan: bool = False, max_bytes: int = MAX_JSON_BYTES
) -> Any:
    """Fetch and parse one JSON object of ``store`` (NotFoundError and store errors propagate)."""
    data = store.get_bytes(key, max_bytes=max_bytes)
    return parse_json(data, store.describe(key), allow_nan=allow_nan, max_bytes=max_bytes)


def json_object(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else a CheckpointError naming ``where``."""
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)
        raise CheckpointError(f"{where} must hold a JSON object, found {kind}")
    return value
