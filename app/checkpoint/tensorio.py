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
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint.jsonread import json_object, parse_json
from app.checkpoint.sniff import sniff_file
from app.errors import CheckpointError

__all__ = [
    "CHUNK_BYTES",
    "MAX_HEADER_BYTES",
    "Written",
    "HashingWriter",
    "sha256_file",
    "write_bytes",
    "write_tensors",
    "read_tensors",
    "host_array",
    "host_view",
    "paddle_numpy_dtype",
]

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


@dataclass(frozen=True)
class Written:
    """What a writer put into a file: its size and the sha256 of exactly those bytes."""

    size: int
    sha256: str


class HashingWriter:
    """A file opened for writing that hashes and counts every byte as it goes out.

    Writes are unbuffered and in slices of at most :data:`CHUNK_BYTES` taken from the caller's buffer
    (a ``memoryview``, no copy), so writing a tensor costs no extra host memory and the digest is of the
    bytes handed to the kernel, not of a later re-read. ``fsync`` on close makes them durable first.
    """

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self._fh = open(path, "wb", buffering=0)  # noqa: SIM115  (closed by finish/abort)
        self._fsync = fsync
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), CHUNK_BYTES):
            chunk = view[start : start + CHUNK_BYTES]
            self._digest.update(chunk)
            while chunk:  # a raw write may take fewer bytes than offered
                chunk = chunk[self._fh.write(chunk) :]
        self._size += len(view)

    def finish(self) -> Written:
        try:
            if self._fsync:
                os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
        return Written(self._size, self._digest.hexdigest())

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()  # idempotent: after finish() this does nothing


def write_bytes(data: bytes, path: Path, *, fsync: bool = False) -> Written:
    """Write ``data`` to ``path`` (replacing it), hashing on the way."""
    with HashingWriter(path, fsync=fsync) as out:
        out.write(data)
        return out.finish()


def write_tensors(tensors: dict[str, np.ndarray], path: Path, what: str, *, fsync: bool = False) -> Written:
    """Write one group as a safetensors file whose bytes depend only on the tensors; return its size and
    the sha256 of the bytes written (computed while writing, the file is never read back).

    The header is canonical JSON (sorted keys, no spaces, tensors in name order, fixed metadata), so the
    same tensors give the same sha256 in every process, whatever order the dict was built in. The
    safetensors library is only used to read (its writer emits metadata in hash-map order). Tensors are
    written one by one straight from their own memory; only an array that is not already C-contiguous
    little-endian is converted, one at a time, just before it is written.
    """
    ordered = sorted(tensors.items(), key=lambda item: str(item[0]))
    for name, array in ordered:
        _check_array(name, array, what)
    header: dict[str, Any] = {"__metadata__": dict(_METADATA)}
    offset = 0
    for name, array in ordered:
        header[name] = {
            "dtype": _DTYPE_CODES[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    raw = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned
    with HashingWriter(path, fsync=fsync) as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        for _, array in ordered:
            if array.nbytes:
                out.write(_little_endian_c(array))
        return out.finish()


_METADATA = {"format": "np", "writer": "warmstart"}
#: numpy dtype name -> safetensors dtype code (uint16 also carries bf16 bit patterns, see the docstring).
_DTYPE_CODES = {np.dtype(t).name: code for code, t in _SIMPLE_DTYPES.items() if code != "BF16"}
#: Tensor names are parameter names; anything longer is not one.
_MAX_NAME = 1024


def _check_array(name: str, array: Any, what: str) -> None:
    """A numpy array of a dtype safetensors holds under a valid name, or a CheckpointError."""
    if not isinstance(array, np.ndarray):
        raise CheckpointError(f"{what}: tensor {name!r} is a {type(array).__name__}, expected numpy.ndarray")
    if not isinstance(name, str) or not name or name == "__metadata__":
        raise CheckpointError(f"{what}: invalid tensor name {name!r}")
    if array.dtype.name not in _DTYPE_CODES:
        raise CheckpointError(
            f"{what}: tensor {name!r} has dtype {array.dtype} which safetensors cannot hold"
        )


def _little_endian_c(array: np.ndarray) -> np.ndarray:
    """``array`` itself when it is C-contiguous little-endian (the usual case), else a converted copy."""
    return array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)


def _check_header(path: Path, what: str) -> dict[str, Any]:
    """The header of a safetensors file, checked before safetensors sees it (bounded JSON, types,
    dtypes, shapes and offsets inside the file); anything else is a CheckpointError naming ``what``."""
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
        header = json_object(parse_json(raw, "the header", max_bytes=MAX_HEADER_BYTES), "the header")
    except CheckpointError as exc:
        raise CheckpointError(f"{what} is not a safetensors file: garbage header ({exc.message})") from None
    for name, info in header.items():
        if name == "__metadata__":
            _check_metadata(info, what)
        else:
            _check_entry(name, info, size - 8 - length, what)
    return header


def _check_metadata(info: Any, what: str) -> None:
    if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
        raise CheckpointError(f"{what} is not a safetensors file: __metadata__ must map strings to strings")


def _check_entry(name: str, info: Any, data_size: int, what: str) -> None:
    """One tensor entry: a known dtype, a shape of non-negative ints, offsets inside the data area that
    match the shape's byte count."""
    bad = f"{what} is not a safetensors file: tensor {name[:80]!r}"
    if len(name) > _MAX_NAME or not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{bad} must be an entry with dtype, shape and data_offsets")
    if not isinstance(info["dtype"], str) or info["dtype"] not in _SIMPLE_DTYPES:
        raise CheckpointError(f"{bad} has unsupported dtype {str(info['dtype'])[:20]!r}")
    shape, offsets = info["shape"], info["data_offsets"]
    if not isinstance(shape, list) or not all(_plain_int(d) for d in shape) or len(shape) > 32:
        raise CheckpointError(f"{bad} has an invalid shape {str(shape)[:60]}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_plain_int(o) for o in offsets):
        raise CheckpointError(f"{bad} has invalid data_offsets {str(offsets)[:60]}")
    start, end = offsets
    expected = math.prod(shape) * np.dtype(_SIMPLE_DTYPES[info["dtype"]]).itemsize
    if not start <= end <= data_size or end - start != expected:
        raise CheckpointError(
            f"{bad}: data_offsets {offsets} do not hold {expected} bytes inside the {data_size}-byte data area"
        )


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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


def host_view(value: Any) -> np.ndarray | None:
    """A zero-copy numpy view of a dense, contiguous CPU Paddle tensor's memory; None for anything else
    (GPU, empty, non-contiguous, not a Paddle tensor). The view is only valid while the tensor lives and
    changes when the tensor is updated: copy out of it before training goes on."""
    try:
        fast = value.place.is_cpu_place() and value.is_dense() and value.is_contiguous()
    except AttributeError:
        return None
    if not fast:
        return None
    dtype = paddle_numpy_dtype(value)
    count = int(np.prod(value.shape)) if value.shape else 1
    if count <= 0:
        return None
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(value.data_ptr())
    return np.frombuffer(buffer, dtype=dtype).reshape(value.shape)


def paddle_numpy_dtype(tensor: Any) -> np.dtype:
    """The numpy dtype a Paddle tensor's bytes are held in on the host (bf16 as ``uint16`` bit patterns)."""
    name = str(tensor.dtype).rsplit(".", 1)[-1]  # "paddle.float32" -> "float32"
    return np.dtype(np.uint16) if name == "bfloat16" else np.dtype(name)


def host_array(value: Any) -> np.ndarray:
    """An independent numpy copy of a Paddle tensor (or array), for a snapshot the trainer may not touch.

    For a dense CPU tensor the bytes are read through a view of its buffer (:func:`host_view`) and copied
    once; that is ~4x faster than ``Tensor.numpy()`` (which goes through its own conversion path).
    Anything else (GPU, empty, non-contiguous) falls back to ``.numpy()``, which also returns a fresh array.
    """
    if isinstance(value, np.ndarray):
        return value.copy()
    view = host_view(value)
    return view.copy() if view is not None else np.asarray(value.numpy())
