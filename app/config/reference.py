"""Generate ``docs/config-reference.md``: every config key with its type, default and description.

The description is the ``#:`` comment above a field (or the class docstring's first line for a section).
``python -m app.config.reference > docs/config-reference.md``; a test keeps the committed file current.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Literal, get_args, get_origin

from app.config.schema import Config
from app.config.typed import field_range

__all__ = ["render"]

_FIELD = re.compile(r"^\s+(\w+)\s*:")


def _comments(cls: type) -> dict[str, str]:
    """field name -> the ``#:`` comment lines just above it."""
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and pending:
            out[match.group(1)] = " ".join(pending)
        pending = [] if not stripped.startswith("#") else pending
    return out


def _type_text(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(tp))
    if origin in (typing.Union, __import__("types").UnionType):
        return " \\| ".join(_type_text(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_text(get_args(tp)[0])}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`".replace("None", "null").replace("'", "")
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "" if dataclasses.is_dataclass(value) else f"`{value!r}`".replace("'", "")
    return "required"


def _section(cls: type, path: str, out: list[str], nested: list[tuple[type, str]]) -> None:
    doc = (inspect.getdoc(cls) or "").split("\n")[0]
    if doc.startswith(f"{cls.__name__}("):  # dataclasses' generated signature, not a description
        doc = ""
    out += [f"## `{path}`", "", doc, ""] if doc else [f"## `{path}`", ""]
    out += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    hints = typing.get_type_hints(cls)
    notes = _comments(cls)
    for f in dataclasses.fields(cls):
        key = f.metadata.get("key", f.name)
        tp = hints[f.name]
        inner = get_args(tp)[0] if get_origin(tp) is list and get_args(tp) else tp
        if get_origin(tp) in (typing.Union, __import__("types").UnionType):  # ``X | None``: document X
            inner = next((a for a in get_args(tp) if dataclasses.is_dataclass(a)), tp)
        if dataclasses.is_dataclass(inner):
            nested.append((inner, f"{path}.{key}" + ("[]" if get_origin(tp) is list else "")))
            out.append(f"| `{key}` | see `{path}.{key}` | | | {notes.get(f.name, '')} |")
            continue
        allowed = field_range(f)
        shown = allowed.text().replace("<", "&lt;") if allowed is not None else ""
        if f.metadata.get("output_folder") or (path == "checkpoint" and key == "uri"):
            shown = "not `/` or a system folder"
        out.append(f"| `{key}` | {_type_text(tp)} | {_default(f)} | {shown} | {notes.get(f.name, '')} |")
    out.append("")


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the config dataclasses by `python -m app.config.reference`; do not edit by hand.",
        "Precedence: defaults < YAML file < `WARMSTART_*` env vars < `--set key=value`.",
        "Numbers must be finite; *allowed* is each number's range, checked when the config loads. Local",
        "folders (`run.dir`, a local `checkpoint.uri`) follow the output-folder rule in docs/config.md.",
        "",
    ]
    queue: list[tuple[type, str]] = []
    for f in dataclasses.fields(Config):
        tp = typing.get_type_hints(Config)[f.name]
        inner = get_args(tp)[0] if get_origin(tp) is list else tp
        queue.append((inner, f.name + ("[]" if inner is not tp else "")))
    while queue:
        cls, path = queue.pop(0)
        nested: list[tuple[type, str]] = []
        _section(cls, path, out, nested)
        queue[0:0] = nested
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
