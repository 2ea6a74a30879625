"""Tensor files and hashes: write/read safetensors with numpy, never unpickling; stream sha256.

Reading checks the file before safetensors sees it: a pickle or zip (what ``paddle.save`` writes) under a
``.safetensors`` name (found by content, :mod:`app.checkpoint.sniff`), a header length larger than the file or a cap, or a header that is not a JSON
object are all a :class:`CheckpointError` naming the file. bf16 has no numpy dtype: Paddle hands bf16
values over as ``uint16`` bit patterns, which are stored as ``U16`` and come back as ``uint16``; a foreign
file holding ``BF16`` tensors is read the same way (bit patterns as ``uint16``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint.sniff import sniff_file
from app.errors import CheckpointError

__all__ = ["CHUNK_BYTES", "MAX_HEADER_BYTES", "sha256_file", "write_tensors", "read_tensors", "host_array"]

CHUNK_BYTES = 4 << 20
#: safetensors itself caps headers at 100 MB; anything near that is garbage, not a checkpoint.
MAX_HEADER_BYTES = 100 << 20
_SIMPLE_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16,
    "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16,
}  # fmt: skip


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_tensors(tensors: dict[str, np.ndarray], path: Path, what: str) -> None:
    """Serialize one group with safetensors. Only a fresh dict reaches safetensors (it edits in place)."""
    from safetensors.numpy import save_file

    prepared: dict[str, np.ndarray] = {}
    for name, array in tensors.items():
        if not isinstance(array, np.ndarray):
            raise CheckpointError(
                f"{what}: tensor {name!r} is a {type(array).__name__}, expected numpy.ndarray"
            )
        if array.dtype.name.upper() not in _NUMPY_NAMES:
            raise CheckpointError(
                f"{what}: tensor {name!r} has dtype {array.dtype} which safetensors cannot hold"
            )
        prepared[name] = np.ascontiguousarray(array)
    save_file(prepared, str(path), metadata={"format": "np", "writer": "warmstart"})


_NUMPY_NAMES = {np.dtype(t).name.upper() for t in _SIMPLE_DTYPES.values()}


def _check_header(path: Path, what: str) -> dict:
    size = path.stat().st_size
    if sniff_file(path) in ("pickle", "zip"):  # by content: a safetensors header may start with \x80
        raise CheckpointError(
            f"{what} is a pickle/zip file, not safetensors; refusing to unpickle it",
            hint="convert trusted .pdparams files with `warmstart ckpt import --allow-pickle`",
        )
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{what} is not a safetensors file: {size} bytes is too short for a header")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or length > size - 8:
            raise CheckpointError(
                f"{what} is not a safetensors file: header length {length} exceeds "
                f"{'the file size' if length <= MAX_HEADER_BYTES else 'the 100 MiB cap'} ({size} bytes)"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{what} is not a safetensors file: garbage header ({exc})") from None
    return header


def read_tensors(path: Path, what: str) -> dict[str, np.ndarray]:
    """Load a safetensors file as numpy arrays (``framework="np"``), after checking its header."""
    from safetensors import safe_open

    header = _check_header(path, what)
    if any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in header.values()):
        return _read_raw(path, header, what)
    try:
        with safe_open(str(path), framework="np") as fh:
            return {name: fh.get_tensor(name) for name in fh.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError/ValueError kinds
        raise CheckpointError(f"{what} cannot be read as safetensors: {exc}") from None


def _read_raw(path: Path, header: dict, what: str) -> dict[str, np.ndarray]:
    """Read a file holding BF16 tensors (no numpy dtype): each one comes back as uint16 bit patterns."""
    data = path.read_bytes()
    base = 8 + struct.unpack("<Q", data[:8])[0]
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_SIMPLE_DTYPES[info["dtype"]]).newbyteorder("<")
            start, end = (base + int(x) for x in info["data_offsets"])
            array = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"])
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{what}: tensor {name!r} cannot be read: {exc}") from None
        out[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return out


def _paddle_dtype(tensor: Any) -> np.dtype:
    name = str(tensor.dtype).rsplit(".", 1)[-1]  # "paddle.float32" -> "float32"
    return np.dtype(np.uint16) if name == "bfloat16" else np.dtype(name)


def host_array(value: Any) -> np.ndarray:
    """An independent numpy copy of a Paddle tensor (or array), for a snapshot the trainer may not touch.

    For a dense CPU tensor the bytes are read through a view of its buffer and copied once; that is ~4x
    faster than ``Tensor.numpy()`` (which goes through its own conversion path). Anything else (GPU,
    empty, non-contiguous) falls back to ``.numpy()``, which also returns a fresh array.
    """
    if isinstance(value, np.ndarray):
        return value.copy()
    try:
        fast = value.place.is_cpu_place() and value.is_dense() and value.is_contiguous()
    except AttributeError:
        fast = False
    if fast:
        dtype = _paddle_dtype(value)
        count = int(np.prod(value.shape)) if value.shape else 1
        if count > 0:
            buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(value.data_ptr())
            return np.frombuffer(buffer, dtype=dtype).reshape(value.shape).copy()
    return np.asarray(value.numpy())
