"""A task's label space (the ordered names its class layers' rows stand for) as recorded in a checkpoint.

A warm start pairs tensors by name and shape, so a dictionary or class list of the same size but other
names or another order would load silently with every row meaning another label. Each checkpoint's
``meta.json`` therefore records the run's label space (``label_space``): its kind, the count, a sha256 of
the names, and the names themselves while they are few and short. :func:`describe_change` says what
differs between a record and a run's label space, in one phrase for a report or an error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import CheckpointError

__all__ = [
    "LabelSpace",
    "MAX_STORED_NAMES",
    "MAX_NAME_CHARS",
    "label_digest",
    "label_record",
    "check_label_record",
    "describe_change",
]

#: Names are stored in meta.json up to this many (PaddleOCR's Chinese dictionary has 6,623 lines);
#: beyond it, or with a longer name, only the count and the sha256 are.
MAX_STORED_NAMES = 10_000
#: Longest name stored (a dictionary line, a class or tag name).
MAX_NAME_CHARS = 256
_MAX_KIND_CHARS = 64
_MAX_COUNT = 1 << 31
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class LabelSpace:
    """What a task's class layers mean, row by row.

    ``kind`` names the list for messages ("dictionary", "classes", "labels", "tags"); ``names`` are the
    labels in row order; ``class_layers`` are glob patterns of the model's parameter names whose rows
    follow ``names`` (what a warm start must not load when the names changed)."""

    kind: str
    names: tuple[str, ...]
    class_layers: tuple[str, ...]


def label_digest(names: Sequence[str]) -> str:
    """sha256 of the names as a compact JSON list (UTF-8): order and every character count."""
    text = json.dumps(list(names), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def label_record(space: LabelSpace) -> dict[str, Any]:
    """The ``label_space`` entry of a checkpoint's meta."""
    names = list(space.names)
    record: dict[str, Any] = {"kind": space.kind, "count": len(names), "sha256": label_digest(names)}
    if len(names) <= MAX_STORED_NAMES and all(len(n) <= MAX_NAME_CHARS for n in names):
        record["names"] = names
    return record


def _bad(where: str, key: str, expected: str) -> CheckpointError:
    return CheckpointError(f"{where}: label_space.{key} must be {expected}")


def check_label_record(value: Any, where: str) -> dict[str, Any]:
    """A ``label_space`` entry read from a meta: types, bounds, and names that match their sha256."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: label_space must be an object")
    kind, count, digest = value.get("kind"), value.get("count"), value.get("sha256")
    if not isinstance(kind, str) or not 0 < len(kind) <= _MAX_KIND_CHARS:
        raise _bad(where, "kind", f"a string of 1 to {_MAX_KIND_CHARS} characters")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT:
        raise _bad(where, "count", f"an integer in [0, {_MAX_COUNT}]")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _bad(where, "sha256", "64 lower-case hex digits")
    if "names" in value:
        names = value["names"]
        if not isinstance(names, list) or len(names) != count or count > MAX_STORED_NAMES:
            raise _bad(where, "names", f"a list of count ({count}) names, at most {MAX_STORED_NAMES}")
        if any(not isinstance(n, str) or len(n) > MAX_NAME_CHARS for n in names):
            raise _bad(where, "names", f"strings of at most {MAX_NAME_CHARS} characters")
        if label_digest(names) != digest:
            raise CheckpointError(f"{where}: label_space.names do not match label_space.sha256")
    return value


def _shown(names: Sequence[str], index: int) -> str:
    if index >= len(names):
        return "(none)"
    name = names[index]
    return repr(name[:_SHOWN_CHARS] + "…" if len(name) > _SHOWN_CHARS else name)


def _name_difference(old: Sequence[str], new: Sequence[str]) -> str:
    differ = [i for i in range(max(len(old), len(new))) if i >= len(old) or i >= len(new) or old[i] != new[i]]
    first = differ[0]
    parts = [f"{len(differ)} differ"] if len(old) == len(new) else []
    if len(old) == len(new) and sorted(old) == sorted(new):
        parts.append("same names in another order")
    parts.append(f"first: index {first} {_shown(old, first)} vs {_shown(new, first)}")
    return "; ".join(parts)


def describe_change(record: Mapping[str, Any], space: LabelSpace) -> str | None:
    """None if ``record`` (a checked meta entry) is ``space``; else ``label space differs (...)``, the
    checkpoint's side first."""
    names = list(space.names)
    if (
        record["kind"] == space.kind
        and record["count"] == len(names)
        and record["sha256"] == label_digest(names)
    ):
        return None
    old_n, new_n = record["count"], len(names)
    if record["kind"] != space.kind:
        return (
            f"label space differs (checkpoint: {record['kind']}, {old_n} labels; "
            f"this run: {space.kind}, {new_n} labels)"
        )
    head = f"{space.kind}: checkpoint {old_n} vs this run {new_n} labels"
    if "names" in record:
        detail = _name_difference(record["names"], names)
    else:
        detail = f"contents differ (sha256 {record['sha256'][:12]}… vs {label_digest(names)[:12]}…)"
    return f"label space differs ({head}, {detail})"
