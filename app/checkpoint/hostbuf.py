"""Host buffers for checkpoint snapshots: allocated once, reused across saves, never refilled while saved.

A save starts with a copy of the state (device tensors) into host memory, on the training thread; the
background saver then writes from that copy while training goes on. Fresh arrays for every save cost a
page fault per 4 KiB page on first touch and give the memory back after each save; on a GPU the
device→host copy is only fast (and asynchronous) into pinned, page-locked host memory, which is itself
expensive to allocate. So:

- :class:`HostBuffers` keeps one host array per tensor name and copies into it. It reallocates only the
  buffer of a tensor whose shape or dtype changed, and drops names that are gone.
- :class:`SnapshotPool` holds the buffer sets of whole snapshots (``group -> name -> tensor``). The save
  thread writes from one set while the next snapshot fills another; a set comes back only when its save
  is over (committed or failed), so a snapshot is never overwritten while it is being written. With at
  most one save in flight (:mod:`app.checkpoint.saver`) two sets suffice; if none is free (a snapshot
  that was never handed to a save), a new set is made rather than waiting.
- :func:`snapshot_into` is the measurement hook for ``make gpu-check``: fill ``buffers`` from ``state``
  and return the seconds it took, device synchronisation included.

Allocation: on a CUDA build of Paddle with a visible GPU, :func:`default_allocator` returns pinned host
tensors (``Tensor.pin_memory()``) viewed as numpy arrays, filled with non-blocking ``Tensor.copy_``
and one ``paddle.device.synchronize()``. That path has NOT run on a GPU here (no GPU machine has Paddle);
on CPU the stand-in is plain numpy memory, and the copy reads each dense CPU tensor through a zero-copy
view (:func:`app.checkpoint.tensorio.host_view`).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.checkpoint.tensorio import host_view, paddle_numpy_dtype

__all__ = [
    "Allocator",
    "HostBuffers",
    "Lease",
    "SnapshotPool",
    "default_allocator",
    "numpy_allocator",
    "pinned_allocator",
    "snapshot_into",
]

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One buffer: the numpy array the saver reads, and the pinned Paddle tensor behind it (GPU only)."""

    array: np.ndarray
    pinned: Any = None


#: ``(shape, numpy dtype) -> slot``.
Allocator = Callable[[tuple[int, ...], np.dtype], _Slot]


def numpy_allocator(shape: tuple[int, ...], dtype: np.dtype) -> _Slot:
    """Plain host memory: the CPU stand-in for pinned buffers."""
    return _Slot(np.empty(shape, dtype=dtype))


def pinned_allocator(shape: tuple[int, ...], dtype: np.dtype) -> _Slot:
    """Pinned (page-locked) host memory from Paddle, seen as a numpy array of the same bytes.

    Needs a CUDA build of Paddle and a GPU (not run here). bf16 is allocated as Paddle ``bfloat16`` so
    ``copy_`` needs no cast; numpy sees its bit patterns as ``uint16``, as everywhere in this package.
    """
    import paddle

    paddle_dtype = "bfloat16" if dtype == np.uint16 else dtype.name
    pinned = paddle.empty(list(shape), dtype=paddle_dtype).pin_memory()
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return _Slot(np.empty(shape, dtype=dtype), pinned)
    raw = (ctypes.c_char * nbytes).from_address(pinned.data_ptr())
    return _Slot(np.frombuffer(raw, dtype=dtype).reshape(shape), pinned)


def default_allocator() -> Allocator:
    """Pinned buffers when Paddle is built with CUDA and sees a GPU, else the numpy stand-in."""
    try:
        import paddle

        if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            return pinned_allocator
    except Exception as exc:  # noqa: BLE001  (no usable GPU: the stand-in is always correct)
        log.debug("pinned host buffers unavailable (%s); using plain host memory", exc)
    return numpy_allocator


def _shape_dtype(value: Any) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(value, np.ndarray):
        return tuple(value.shape), value.dtype
    return tuple(int(d) for d in value.shape), paddle_numpy_dtype(value)


def _on_device(value: Any) -> bool:
    try:
        return not isinstance(value, np.ndarray) and not value.place.is_cpu_place()
    except AttributeError:
        return False


class HostBuffers:
    """One reusable host array per tensor name (see the module docstring)."""

    def __init__(self, allocator: Allocator | None = None) -> None:
        self._allocate = allocator or numpy_allocator
        self._slots: dict[str, _Slot] = {}
        #: How many buffers were (re)allocated so far: unchanged across saves of an unchanged model.
        self.allocations = 0

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {name: slot.array for name, slot in self._slots.items()}

    def fill(self, state: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Copy every tensor of ``state`` into its buffer; returns ``name -> array`` (the buffers).

        Returns once the bytes are in host memory (GPU copies are synchronised), so the caller may
        update the tensors right after.
        """
        self._slots = {name: self._slot_for(name, value) for name, value in state.items()}
        issued = False
        for name, value in state.items():
            issued |= self._copy(self._slots[name], value)
        if issued:
            import paddle

            paddle.device.synchronize()
        return self.arrays

    def _slot_for(self, name: str, value: Any) -> _Slot:
        shape, dtype = _shape_dtype(value)
        slot = self._slots.get(name)
        if slot is None or slot.array.shape != shape or slot.array.dtype != dtype:
            slot = self._allocate(shape, dtype)
            self.allocations += 1
        slot.array.flags.writeable = True  # a save marked it read-only; that save is over
        return slot

    @staticmethod
    def _copy(slot: _Slot, value: Any) -> bool:
        """Copy ``value`` into ``slot``; True when an asynchronous device copy was issued."""
        if slot.pinned is not None and _on_device(value):
            slot.pinned.copy_(value, False)
            return True
        if isinstance(value, np.ndarray):
            np.copyto(slot.array, value)
            return False
        view = host_view(value)
        np.copyto(slot.array, view if view is not None else np.asarray(value.numpy()))
        return False


def snapshot_into(buffers: HostBuffers, state: Mapping[str, Any]) -> float:
    """Copy ``state`` (name -> Paddle tensor or array) into ``buffers``; the seconds it took.

    What ``make gpu-check`` times as "the checkpoint's device→host copy": the same call the trainer's
    snapshot makes, reusing the buffers of the previous call when shapes are unchanged.
    """
    started = time.perf_counter()
    buffers.fill(state)
    return time.perf_counter() - started


@dataclass
class Lease:
    """A filled buffer set handed to one save; :meth:`release` (idempotent) gives it back to the pool."""

    tensors: dict[str, dict[str, np.ndarray]]
    _give_back: Callable[[], None] = field(repr=False)
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._give_back()


class SnapshotPool:
    """Buffer sets for whole snapshots (``group -> name -> tensor``), reused once their save is over."""

    def __init__(self, allocator: Allocator | None = None) -> None:
        self._allocator = allocator
        self._free: list[dict[str, HostBuffers]] = []
        self._lock = threading.Lock()
        #: Buffer sets made so far (2 in steady state with background saves, 1 with synchronous ones).
        self.sets = 0

    def take(self, state: Mapping[str, Mapping[str, Any]]) -> Lease:
        """Copy ``state`` into a free buffer set; release the lease when the save that uses it is over."""
        buffers = self._acquire()
        tensors = {}
        try:
            for group, named in state.items():
                if group not in buffers:
                    buffers[group] = HostBuffers(self._allocator or default_allocator())
                tensors[group] = buffers[group].fill(named)
        except BaseException:
            self._give_back(buffers)
            raise
        for group in set(buffers) - set(state):
            del buffers[group]
        return Lease(tensors, lambda: self._give_back(buffers))

    def _acquire(self) -> dict[str, HostBuffers]:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.sets += 1
            if self.sets > 2:
                log.debug("snapshot buffer set %d allocated (none was free)", self.sets)
            return {}

    def _give_back(self, buffers: dict[str, HostBuffers]) -> None:
        with self._lock:
            self._free.append(buffers)
