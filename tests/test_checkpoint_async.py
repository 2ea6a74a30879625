"""Async saving: hand-over returns at once, one save in flight, loud failures, snapshot isolation."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ckpt_helpers import FailingStore, GatedStore, expected_tensors, make_snapshot

from app.checkpoint import CheckpointConfig, CheckpointManager, Snapshot, host_copy
from app.errors import CheckpointError, StorageError
from app.store import open_store


def _manager(store, tmp_path: Path, **cfg) -> CheckpointManager:  # noqa: ANN001
    return CheckpointManager(store, CheckpointConfig(**{"keep_last": None, **cfg}), tmp_path / "stage")


def test_save_returns_before_upload_and_second_save_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.checkpoint")
    store = GatedStore(open_store(str(tmp_path / "ckpts")))
    mgr = _manager(store, tmp_path, leftover_minutes=0.0)
    assert mgr.save(make_snapshot(1)) is None  # returned while the upload is blocked
    assert store.uploading.wait(10) and mgr.in_flight == 1
    assert mgr.committed_steps() == [] and mgr.latest() is None
    assert mgr.gc() == []  # in flight: never cleaned up, even with leftover_minutes=0
    assert store.exists("step-00000001/.started")
    threading.Timer(0.3, store.gate.set).start()
    started = time.monotonic()
    mgr.save(make_snapshot(2))  # waits for step 1
    assert time.monotonic() - started >= 0.25
    ref = mgr.flush()
    assert ref is not None and ref.step == 2 and mgr.committed_steps() == [1, 2]
    messages = [r.getMessage() for r in caplog.records]
    assert "checkpoint step 2 waits for step 1, still being saved" in messages
    assert any(
        m.startswith("waited ") and m.endswith("s for checkpoint step 1 to finish saving") for m in messages
    )
    assert not store.exists("step-00000001/.started")  # marker removed after commit
    mgr.close()


def test_failed_upload_raises_on_next_save_and_keeps_staged_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = open_store(str(tmp_path / "ckpts"))
    mgr = _manager(FailingStore(inner, "optimizer.safetensors"), tmp_path)
    mgr.save(make_snapshot(5))
    with pytest.raises(StorageError, match="gave up after 6 attempts") as info:
        mgr.flush()
    assert info.value.exit_code == 3
    staged = tmp_path / "stage" / "step-00000005"
    assert sorted(p.name for p in staged.iterdir()) == [  # staged in full before the first upload
        "meta.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]  # fmt: skip
    assert any(str(staged) in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert not inner.exists("step-00000005/manifest.json") and mgr.latest() is None
    mgr.flush()  # raised once; the run decides what to do next


def test_failure_surfaces_on_the_following_save(tmp_path: Path) -> None:
    mgr = _manager(FailingStore(open_store(str(tmp_path / "ckpts")), "model.safetensors"), tmp_path)
    mgr.save(make_snapshot(1))
    with pytest.raises(StorageError, match="step-00000001/model.safetensors"):
        mgr.save(make_snapshot(2))  # raised before step 2 is handed over: nothing of it is written
    assert mgr.flush() is None and mgr.in_flight is None
    assert mgr.committed_steps() == [] and not mgr.store.exists("step-00000002/.started")


def test_check_raises_a_finished_failure_without_waiting(tmp_path: Path) -> None:
    mgr = _manager(FailingStore(open_store(str(tmp_path / "ckpts")), "meta.json"), tmp_path)
    mgr.save(make_snapshot(1))
    deadline = time.monotonic() + 10
    while mgr.in_flight is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(StorageError, match="meta.json"):
        mgr.check()


def test_handed_over_arrays_are_frozen(tmp_path: Path) -> None:
    store = GatedStore(open_store(str(tmp_path / "ckpts")))
    mgr = _manager(store, tmp_path)
    snap = make_snapshot(3)
    mgr.save(snap)
    with pytest.raises(ValueError, match="read-only"):
        snap.tensors["model"]["linear.bias"][0] = 99.0
    snap.state["step"] = 999  # the dicts were encoded at hand-over
    snap.meta["metrics"]["accuracy"] = 1.0
    store.gate.set()
    loaded = mgr.load(mgr.flush())
    assert np.array_equal(loaded.tensors["model"]["linear.bias"], expected_tensors(3)["model"]["linear.bias"])
    assert loaded.state["step"] == 3 and loaded.meta["metrics"] == {}


def test_paddle_parameters_changed_after_save_do_not_change_the_checkpoint(tmp_path: Path) -> None:
    import paddle

    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = paddle.nn.Linear(4, 3)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    store = GatedStore(open_store(str(tmp_path / "ckpts")))
    mgr = _manager(store, tmp_path)
    mgr.save(Snapshot(step=1, tensors={"model": host_copy(model.state_dict())}, state={}, meta={}))
    for param in model.parameters():  # training goes on while the save is in flight
        param.set_value(paddle.full(param.shape, 7.0))
    store.gate.set()
    loaded = mgr.load(mgr.flush())
    assert sorted(loaded.tensors["model"]) == sorted(before)
    for name, value in before.items():
        assert np.array_equal(loaded.tensors["model"][name], value)
    assert not np.array_equal(model.weight.numpy(), before["weight"])


def test_sync_mode_commits_before_returning(tmp_path: Path) -> None:
    mgr = _manager(open_store(str(tmp_path / "ckpts")), tmp_path, async_save=False)
    ref = mgr.save(make_snapshot(4))
    assert ref is not None and ref.step == 4 and mgr.committed_steps() == [4]
    with pytest.raises(CheckpointError, match="not plain JSON"):
        mgr.save(Snapshot(step=5, tensors=expected_tensors(5), state={"bad": object()}, meta={}))
    assert mgr.committed_steps() == [4]


def test_saving_a_committed_step_again_is_a_no_op(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.checkpoint")
    mgr = _manager(open_store(str(tmp_path / "ckpts")), tmp_path, async_save=False)
    first = mgr.save(make_snapshot(4))
    again = mgr.save(make_snapshot(4))
    assert again == first
    assert any("already committed" in r.getMessage() for r in caplog.records)
