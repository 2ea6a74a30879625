"""Shared-memory slots for batches: anonymous memory files (``memfd``) a data worker writes a batch's arrays
into and the trainer reads them from in place, so only a small JSON header crosses the pipe.

Each worker gets its own ring of slots, created by the trainer *before* the fork, so both processes hold
the same files. A memfd has no name anywhere in the file system (nothing in ``/dev/shm``): its memory is
freed by the kernel when the last process holding it exits, so no segment can outlive the run — not after
an exception, a SIGTERM or a ``kill -9`` of the trainer.

A slot starts empty and grows (never shrinks) when a batch does not fit: the worker extends the file with
``posix_fallocate`` (so an exhausted memory limit is an error, ``OSError``, not a SIGBUS on a later write)
and the trainer maps the new size when the header says so. The trainer maps slots read-only: the arrays it
gets are read-only views, as with the pipe. Which slot a batch goes to, and when a slot may be written
again, is decided by the trainer (:mod:`app.train.workers`): a slot is reused only after the batch in it
was consumed.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import Any

import numpy as np

from app.train import wire

__all__ = ["Slot", "available", "layout", "encode_into", "decode_from", "ALIGN"]

#: Arrays start at multiples of this many bytes in a slot (cache line; numpy's alignment needs 16 at most).
ALIGN = 64
#: A slot grows to at least this much more than asked, so slowly growing batches do not remap every time.
GROWTH = 1.25


def available() -> bool:
    """Whether this system has ``memfd_create`` (Linux); without it batches go over the pipe."""
    return hasattr(os, "memfd_create")


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def layout(buffers: list[memoryview]) -> tuple[list[list[int]], int]:
    """``[offset, nbytes]`` of each buffer in a slot, and the bytes the slot needs."""
    spans, end = [], 0
    for buf in buffers:
        spans.append([end, buf.nbytes])
        end = _aligned(end + buf.nbytes)
    return spans, end


class Slot:
    """One memory file and this process's mapping of it (writable in the worker, read-only in the trainer)."""

    def __init__(self, name: str) -> None:
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)  # not passed on to programs the trainer runs
        self.map: mmap.mmap | None = None
        self.writable = False

    # --- in the worker ---
    def write(self, buffers: list[memoryview]) -> dict[str, Any]:
        """Copy ``buffers`` into the slot (growing it if needed); the header fields the trainer needs."""
        spans, need = layout(buffers)
        self._fit(need)
        if need:
            view = np.frombuffer(self.map, dtype=np.uint8, count=need)  # type: ignore[arg-type]
            for (offset, nbytes), buf in zip(spans, buffers, strict=True):
                view[offset : offset + nbytes] = np.frombuffer(buf, dtype=np.uint8)
            del view  # no export left on the mapping, so it can be remapped when the slot grows
        return {"spans": spans, "size": self._size()}

    def _fit(self, need: int) -> None:
        size = self._size()
        if need > size:
            new = max(need, int(size * GROWTH)) + mmap.PAGESIZE - 1
            new -= new % mmap.PAGESIZE
            os.posix_fallocate(self.fd, 0, new)  # ENOSPC / ENOMEM here rather than SIGBUS when writing
            size = new
        if need and (self.map is None or len(self.map) < size):
            self._remap(size, writable=True)

    # --- in the trainer ---
    def read(self, spans: list[list[int]], size: int) -> list[memoryview]:
        """Read-only views of the buffers a worker wrote (valid until the slot is handed out again)."""
        if not any(nbytes for _, nbytes in spans):  # nothing was written (only empty arrays)
            return [memoryview(b"") for _ in spans]
        if self.map is None or len(self.map) < size:
            self._remap(size, writable=False)
        whole = memoryview(self.map)  # type: ignore[arg-type]
        return [whole[offset : offset + nbytes] for offset, nbytes in spans]

    # --- both ---
    def _size(self) -> int:
        return os.fstat(self.fd).st_size

    def _remap(self, size: int, writable: bool) -> None:
        # The old mapping is dropped, not closed: arrays the trainer still holds keep it alive until they go.
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self.map = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED, prot=prot)
        self.writable = writable

    def close(self) -> None:
        """Unmap (unless arrays still use the mapping: then it goes with them) and close the file."""
        if self.map is not None:
            with contextlib.suppress(BufferError):
                self.map.close()
            self.map = None
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def encode_into(slot: Slot, tree: Any) -> dict[str, Any]:
    """The header for ``tree`` written into ``slot``: the JSON tree description plus where its arrays are."""
    description, buffers = wire.encode(tree)
    return {"tree": description, **slot.write(buffers)}


def decode_from(slot: Slot, header: dict[str, Any]) -> Any:
    """The tree a worker wrote into ``slot`` (arrays are read-only views of the shared memory)."""
    return wire.decode(header["tree"], slot.read(header["spans"], header["size"]))
