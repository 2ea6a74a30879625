"""Hypothesis strategies for hostile input: JSON documents (generated and mutated from a valid one),
raw bytes, safetensors headers and YAML configuration text.

Values JSON cannot spell through :func:`json.dumps` (``1e999``, 1000-level nesting as text) are put in as
:class:`Raw` placeholders and substituted after encoding, so a reader sees exactly those bytes.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "Raw",
    "encode_json",
    "json_values",
    "nasty_values",
    "mutated_document",
    "json_file_bytes",
    "safetensors_bytes",
    "nasty_names",
    "deep_json_text",
]


@dataclass(frozen=True)
class Raw:
    """A JSON fragment inserted verbatim (e.g. ``1e999`` or ``[[[[...]]]]``)."""

    text: str


def encode_json(value: Any) -> bytes:
    """``json.dumps`` with NaN/Infinity allowed and every :class:`Raw` spliced in verbatim."""
    raws: list[str] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(obj).__name__)

    text = json.dumps(value, allow_nan=True, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), raw)
    return text.encode("utf-8")


def deep_json_text(depth: int, opener: str = "[") -> str:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return '{"a":' * depth + "1" + "}" * depth
    return opener * depth + closer * depth


#: Names that must never reach a path join: traversal, separators, NUL, absolute, reserved.
nasty_names = st.sampled_from(
    ["..", ".", "", "/", "\\", "../x", "..\\..\\x", "a/../../b", "/etc/passwd", "C:\\x", "x\x00y", "\x00",
     "manifest.json", "step-00000001", "tags/../x", "..%2f..", " ", "a" * 300, "\u202e.json", "con"]
)  # fmt: skip

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)

#: Any JSON value, nested a few levels (hypothesis' recursive strategy).
json_values = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)

#: Replacement values that broke readers before: overflow, NaN, wrong types, deep nesting, bad names.
nasty_values = st.one_of(
    st.sampled_from(
        [
            Raw("1e999"),
            Raw("-1e999"),
            Raw("NaN"),
            Raw("Infinity"),
            -1,
            0,
            2**70,
            -(2**70),
            2**63,
            1.5,
            True,
            False,
            None,
            "",
            "1",
            "step",
            [],
            {},
            [1, 2],
            {"a": 1},
            Raw(deep_json_text(1000)),
            Raw(deep_json_text(1000, "{")),
            Raw(deep_json_text(60)),
        ]
    ),  # fmt: skip
    nasty_names,
    json_values,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:6]):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def _fresh(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    """A drawn value that is safe to put into a document and edit: ``sampled_from`` hands out the same
    list/dict object every time, so editing it in place would leak into later examples (and could make
    it contain itself)."""
    return copy.deepcopy(draw(strategy))


@st.composite
def mutated_document(draw: st.DrawFn, base: Any) -> Any:
    """``base`` (a parsed valid file) with 1-4 values replaced, deleted, or keys added."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add_key", "wrap"]))
        if op == "add_key":
            target = doc
            for part in path:
                target = target[part]
            if isinstance(target, dict):
                target[draw(st.one_of(nasty_names, st.text(max_size=6)))] = _fresh(draw, nasty_values)
            continue
        if op == "wrap":
            node = doc
            for part in path:
                node = node[part]
            doc = _set(
                doc,
                path,
                copy.deepcopy(draw(st.sampled_from([[node], {"value": node}, str(node)[:50]]))),
                False,
            )
            continue
        doc = _set(doc, path, _fresh(draw, nasty_values), op == "delete" and bool(path))
    return doc


def json_file_bytes(base: Any) -> st.SearchStrategy[bytes]:
    """Bytes of a JSON file: mostly mutations of ``base``, plus generated JSON, deep nesting, garbage."""
    return st.one_of(
        mutated_document(base).map(encode_json),
        mutated_document(base).map(encode_json),
        json_values.map(encode_json),
        st.builds(
            deep_json_text, st.sampled_from([100, 999, 1000, 5000, 100_000]), st.sampled_from("[{")
        ).map(str.encode),
        st.binary(max_size=512),
        st.sampled_from([b"", b"null", b"[]", b'"x"', b"1e999", b"\xff\xfe{}", b'{"a":1}\x00', b"{" * 10]),
    )


def _header_bytes(header: Any, rest: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else encode_json(header)
    return struct.pack("<Q", len(raw)) + raw + rest


_DTYPES = st.sampled_from(["F32", "F16", "BF16", "I64", "U16", "F8_E4M3", "X", "", 1, None, ["F32"]])
_DIMS = st.sampled_from([[], [0], [-1], [2**70], [1e999], ["a"], [1.5], [2, 2], [10**12, 10**12], None, 3])
_OFFSETS = st.sampled_from([[0, 0], [0, 2**70], [-5, 3], [10, 2], [0], "a", None, [0, Raw("1e999")],
                            [Raw("NaN"), 4], [0, 10**9]])  # fmt: skip


@st.composite
def _mutated_header(draw: st.DrawFn, header: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(header))
    names = [k for k in doc if k != "__metadata__"]
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names + ["__metadata__", "new"]))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "whole", "drop", "bf16"]))
        if field == "bf16" and isinstance(doc.get(name), dict):  # the raw reader (no numpy bf16 dtype)
            doc[name]["dtype"] = "BF16"
            doc[name][draw(st.sampled_from(["shape", "data_offsets"]))] = _fresh(
                draw, st.one_of(_DIMS, _OFFSETS)
            )
        elif field == "whole":
            doc[name] = _fresh(draw, nasty_values)
        elif field == "drop":
            doc.pop(name, None)
        elif isinstance(doc.get(name), dict):
            strat = {"dtype": _DTYPES, "shape": _DIMS, "data_offsets": _OFFSETS}[field]
            doc[name][field] = _fresh(draw, strat)
    return doc


def safetensors_bytes(good: bytes) -> st.SearchStrategy[bytes]:
    """A safetensors file: ``good`` with a mutated header, a lying length prefix, or garbage."""
    (length,) = struct.unpack("<Q", good[:8])
    header, rest = json.loads(good[8 : 8 + length]), good[8 + length :]
    lying = st.sampled_from([0, 1, length - 1, length + 1, len(good), 2**63, 2**64 - 1, 100 << 20])
    return st.one_of(
        _mutated_header(header).map(lambda h: _header_bytes(h, rest)),
        _mutated_header(header).map(lambda h: _header_bytes(h, rest)),
        json_values.map(lambda h: _header_bytes(h, rest)),
        st.sampled_from([deep_json_text(1000), deep_json_text(5000, "{")]).map(
            lambda t: _header_bytes(t.encode(), rest)
        ),
        lying.map(lambda n: struct.pack("<Q", n) + good[8:]),
        st.binary(max_size=256).map(lambda b: _header_bytes(b, rest)),
        st.binary(max_size=64),
    )


def finite(value: Any) -> bool:
    """True when no float anywhere in ``value`` is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(finite(v) for v in value)
    return True


@dataclass(frozen=True)
class Edit:
    """Changes to a valid document, applied when its bytes are known (explicit examples need no fixture).

    ``changes`` is ``((path, value), ...)``; a path element ``"*"`` is the first key that is not
    ``__metadata__`` (a tensor of a safetensors header); the empty path replaces the whole document.
    """

    changes: tuple

    def apply_json(self, base: Any) -> bytes:
        return encode_json(self._edited(base))

    def apply_safetensors(self, good: bytes) -> bytes:
        (length,) = struct.unpack("<Q", good[:8])
        header = self._edited(json.loads(good[8 : 8 + length]))
        raw = header.text.encode() if isinstance(header, Raw) else encode_json(header)
        return struct.pack("<Q", len(raw)) + raw + good[8 + length :]

    def _edited(self, base: Any) -> Any:
        doc = json.loads(json.dumps(base))
        for path, value in self.changes:
            if not path:
                doc = value
                continue
            parent = doc
            for part in path[:-1]:
                parent = parent[_key(parent, part)]
            parent[_key(parent, path[-1])] = value
        return doc


def _key(node: Any, part: Any) -> Any:
    return next(k for k in node if k != "__metadata__") if part == "*" else part


def edit(*changes: tuple) -> Edit:
    return Edit(tuple(changes))
