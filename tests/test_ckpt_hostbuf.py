"""Reusable host buffers for checkpoint snapshots (app.checkpoint.hostbuf), on CPU with real Paddle tensors.

The buffers of an unchanged model are the same arrays at the same addresses save after save; a shape
or dtype change reallocates that buffer only; and a snapshot stays exactly the state of its step while
training updates the parameters and takes the next snapshot during the save.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import app  # noqa: F401  (zlib before paddle)

import paddle  # isort: skip
from ckpt_helpers import make_snapshot

from app.checkpoint import CheckpointConfig, CheckpointManager, Snapshot
from app.checkpoint import writer as writer_mod
from app.checkpoint.hostbuf import HostBuffers, SnapshotPool, numpy_allocator, snapshot_into
from app.checkpoint.tensorio import host_array, read_tensors
from app.store import open_store


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def _host(tensor: paddle.Tensor) -> np.ndarray:
    """The reference host copy (the path every snapshot took before the buffers)."""
    return host_array(tensor)


def _state(seed: float) -> dict[str, paddle.Tensor]:
    return {
        "w": paddle.full([64, 32], seed, dtype="float32"),
        "b": paddle.arange(8, dtype="int64") + int(seed),
        "h": paddle.full([5], seed, dtype="float16"),
        "bf": paddle.full([3], seed, dtype="bfloat16"),
    }


def test_buffers_are_reused_across_snapshots() -> None:
    buffers = HostBuffers()
    state = _state(1.0)
    seconds = snapshot_into(buffers, state)
    first = buffers.arrays
    ids = {n: (id(a), _address(a)) for n, a in first.items()}
    assert seconds >= 0 and buffers.allocations == 4
    for name, tensor in state.items():
        tensor.set_value(_state(2.0)[name])
    snapshot_into(buffers, state)
    again = buffers.arrays
    assert {n: (id(a), _address(a)) for n, a in again.items()} == ids
    assert buffers.allocations == 4
    np.testing.assert_array_equal(again["w"], np.full((64, 32), 2.0, np.float32))
    np.testing.assert_array_equal(again["b"], np.arange(8) + 2)
    assert again["bf"].dtype == np.uint16  # bf16 bit patterns, as the writer stores them
    np.testing.assert_array_equal(again["bf"], _host(_state(2.0)["bf"]))


def test_a_shape_or_dtype_change_reallocates_only_that_buffer() -> None:
    buffers = HostBuffers()
    state = _state(1.0)
    buffers.fill(state)
    before = {n: _address(a) for n, a in buffers.arrays.items()}
    state["w"] = paddle.full([64, 16], 3.0, dtype="float32")  # a resized layer
    state["b"] = paddle.arange(8, dtype="int32")  # a changed dtype
    del state["h"]  # gone from the model
    after = buffers.fill(state)
    assert sorted(after) == ["b", "bf", "w"]
    assert after["w"].shape == (64, 16) and after["b"].dtype == np.int32
    assert buffers.allocations == 6
    assert _address(after["bf"]) == before["bf"]
    np.testing.assert_array_equal(after["w"], np.full((64, 16), 3.0, np.float32))


def test_numpy_inputs_and_the_standin_allocator() -> None:
    buffers = HostBuffers(numpy_allocator)
    src = {"a": np.arange(6, dtype=np.float64).reshape(2, 3)}
    out = buffers.fill(src)
    assert out["a"] is not src["a"] and np.array_equal(out["a"], src["a"])
    src["a"][0, 0] = 99
    assert out["a"][0, 0] == 0  # a copy, not a view of the caller's array


def test_pool_alternates_two_sets_and_reuses_them() -> None:
    pool = SnapshotPool()
    state = {"model": _state(1.0)}
    a = pool.take(state)
    b = pool.take(state)  # a is still being saved: b gets the other set
    assert _address(a.tensors["model"]["w"]) != _address(b.tensors["model"]["w"])
    a.release()
    a.release()  # idempotent
    c = pool.take(state)
    assert c.tensors["model"]["w"] is a.tensors["model"]["w"]
    b.release()
    c.release()
    assert pool.sets == 2


def test_snapshot_stays_consistent_while_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Save of step 1 blocked inside the writer; meanwhile the parameters change and step 2 is snapshot."""
    gate, writing = threading.Event(), threading.Event()
    real = writer_mod.write_tensors

    def gated(tensors, path, what, **kw):  # noqa: ANN001, ANN003, ANN202
        writing.set()
        assert gate.wait(60), "test never opened the gate"
        return real(tensors, path, what, **kw)

    monkeypatch.setattr(writer_mod, "write_tensors", gated)
    uri = str(tmp_path / "ck")
    mgr = CheckpointManager(open_store(uri), CheckpointConfig(keep_last=None, keep_best=0), tmp_path / "st")
    params = _state(1.0)
    base = make_snapshot(1)

    def save(step: int) -> np.ndarray:
        lease = mgr.buffers.take({"model": params})
        mgr.save(Snapshot(step, lease.tensors, base.state | {"step": step}, base.meta, release=lease.release))
        return lease.tensors["model"]["w"]

    first = save(1)
    assert writing.wait(60)
    for name, tensor in params.items():  # training goes on while step 1 is written
        tensor.set_value(_state(5.0)[name])
    second = mgr.buffers.take({"model": params})  # the next snapshot must not land in step 1's buffers
    assert _address(second.tensors["model"]["w"]) != _address(first)
    second.release()
    gate.set()
    mgr.flush()
    again = save(2)  # step 1's save is over: a set is reused, no third one is made
    mgr.close()
    assert mgr.buffers.sets == 2
    assert _address(again) in {_address(first), _address(second.tensors["model"]["w"])}
    step1 = read_tensors(Path(uri) / "step-00000001" / "model.safetensors", "step 1")
    step2 = read_tensors(Path(uri) / "step-00000002" / "model.safetensors", "step 2")
    for name, value in _state(1.0).items():
        np.testing.assert_array_equal(step1[name], _host(value))
    for name, value in _state(5.0).items():
        np.testing.assert_array_equal(step2[name], _host(value))


def test_a_failed_save_gives_its_buffers_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        raise OSError("disk full")

    monkeypatch.setattr(writer_mod, "write_tensors", broken)
    mgr = CheckpointManager(
        open_store(str(tmp_path / "ck")), CheckpointConfig(async_save=False), tmp_path / "st"
    )
    lease = mgr.buffers.take({"model": _state(1.0)})
    snap = make_snapshot(1)
    with pytest.raises(Exception, match="disk full"):
        mgr.save(Snapshot(1, lease.tensors, snap.state, snap.meta, release=lease.release))
    again = mgr.buffers.take({"model": _state(1.0)})
    assert again.tensors["model"]["w"] is lease.tensors["model"]["w"] and mgr.buffers.sets == 1
