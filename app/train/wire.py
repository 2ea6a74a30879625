"""Batches as bytes between a data worker and the trainer: numpy buffers plus a JSON description, no pickle.

A batch is a tree of numpy arrays in dicts (string keys), lists and tuples, with plain scalars, numpy
scalars, strings and None as leaves. :func:`encode` gives a JSON header and the arrays' raw buffers (no
copy for contiguous arrays); :func:`decode` rebuilds the tree around the received buffers. Paddle
tensors, objects and object arrays are refused: a worker must hand over plain data (FIELD_NOTES:
DataLoader workers that returned paddle tensors segfaulted).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["encode", "decode", "WireError"]


class WireError(TypeError):
    """A batch holds something that cannot cross the process boundary as plain data."""


def _leaf(x: Any, buffers: list[memoryview]) -> dict[str, Any]:
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise WireError(f"a batch array has dtype object (shape {list(x.shape)}); use numeric arrays")
        a = np.ascontiguousarray(x)
        buffers.append(memoryview(a.reshape(-1).view(np.uint8)))
        return {"a": len(buffers) - 1, "dtype": a.dtype.str, "shape": list(a.shape)}
    if isinstance(x, np.generic):
        if x.dtype.hasobject:
            raise WireError("a batch holds a numpy object scalar")
        return {"s": x.item(), "dtype": x.dtype.str}
    if x is None or isinstance(x, bool | int | float | str):
        return {"v": x}
    raise WireError(
        f"a batch may hold numpy arrays, dicts, lists, tuples and plain scalars, not {type(x).__module__}."
        f"{type(x).__name__}"
    )


def _walk(x: Any, buffers: list[memoryview]) -> dict[str, Any]:
    if isinstance(x, dict):
        bad = [k for k in x if not isinstance(k, str)]
        if bad:
            raise WireError(f"a batch dict has a non-string key {bad[0]!r}")
        return {"d": [[k, _walk(v, buffers)] for k, v in x.items()]}
    if isinstance(x, tuple):
        return {"t": [_walk(v, buffers) for v in x]}
    if isinstance(x, list):
        return {"l": [_walk(v, buffers) for v in x]}
    return _leaf(x, buffers)


def encode(tree: Any) -> tuple[dict[str, Any], list[memoryview]]:
    """The tree's JSON-able description and its arrays' buffers, in order."""
    buffers: list[memoryview] = []
    return _walk(tree, buffers), buffers


def _build(node: dict[str, Any], buffers: list[bytes]) -> Any:
    if "d" in node:
        return {k: _build(v, buffers) for k, v in node["d"]}
    if "t" in node:
        return tuple(_build(v, buffers) for v in node["t"])
    if "l" in node:
        return [_build(v, buffers) for v in node["l"]]
    if "a" in node:
        return np.frombuffer(buffers[node["a"]], dtype=np.dtype(node["dtype"])).reshape(node["shape"])
    if "s" in node:
        return np.dtype(node["dtype"]).type(node["s"])
    return node["v"]


def decode(description: dict[str, Any], buffers: list[bytes]) -> Any:
    """The tree :func:`encode` described; arrays are read-only views of ``buffers``."""
    return _build(description, buffers)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)
