"""Checkpoint contract over every store backend (local folder and S3 on a real moto server).

Covers the layout and commit rule, round-trips, the "latest" rule with torn checkpoints, retention with
remote deletion, protection of the resume-from checkpoint and of tags, leftover cleanup and ``#tag``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ckpt_helpers import (
    expected_tensors,
    flip_byte,
    grow_file,
    make_snapshot,
    manifest_of,
    remove_key,
    save_steps,
)

from app.checkpoint import CheckpointConfig, CheckpointManager, open_source
from app.checkpoint.catalog import scan
from app.checkpoint.tags import promote
from app.errors import CheckpointError
from app.store import ObjectStore
from app.store.config import StoreConfig

OpenStore = Callable[[str], ObjectStore]
FILES = ["manifest.json", "meta.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]


@pytest.fixture
def store(store_uri: str, open_test_store: OpenStore) -> ObjectStore:
    return open_test_store(store_uri)


@pytest.fixture
def store_cfg(store_uri: str, request: pytest.FixtureRequest) -> StoreConfig | None:
    """The store settings ``open_source`` needs to reach the same backend."""
    return request.getfixturevalue("s3_store_config") if store_uri.startswith("s3://") else None


def _keys(store: ObjectStore, step: int) -> list[str]:
    return [info.key for info in store.list(f"step-{step:08d}/")]


def test_step_folder_holds_exactly_the_committed_files(store: ObjectStore, tmp_path: Path) -> None:
    save_steps(store, tmp_path / "stage", [(100, 0.5)])
    assert _keys(store, 100) == [f"step-00000100/{name}" for name in FILES]
    manifest = manifest_of(store, 100)
    assert manifest["step"] == 100 and manifest["format"] == "warmstart-checkpoint"
    listed = {entry["name"]: entry for entry in manifest["files"]}
    assert sorted(listed) == sorted(set(FILES) - {"manifest.json"})
    for name, entry in listed.items():
        data = store.get_bytes(f"step-00000100/{name}")
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "stage" / "step-00000100").exists()  # staging removed after commit


def test_round_trip_tensors_state_and_lineage(store: ObjectStore, tmp_path: Path) -> None:
    mgr = save_steps(store, tmp_path / "stage", [(7, 0.25)])
    ref = mgr.latest()
    assert ref is not None and ref.step == 7 and ref.uri == store.describe("step-00000007")
    loaded = mgr.load(ref)
    for group, arrays in expected_tensors(7).items():
        assert sorted(loaded.tensors[group]) == sorted(arrays)
        for name, array in arrays.items():
            assert loaded.tensors[group][name].dtype == array.dtype
            assert np.array_equal(loaded.tensors[group][name], array)
    assert loaded.state == make_snapshot(7).state
    meta = loaded.meta
    assert meta["metrics"] == {"accuracy": 0.25} and meta["config_hash"] == "abc123"
    assert meta["data_source"] == "digits" and meta["parent"] is None and meta["step"] == 7
    assert meta["code_version"]["app"] == "0.1.0" and meta["paddle_version"] == "2.6.2"
    assert meta["utc_time"].endswith("Z") and meta["user"]
    assert hashlib.sha256(store.get_bytes("step-00000007/manifest.json")).hexdigest() == ref.manifest_sha256


def _tear(store: ObjectStore, how: str) -> str:
    key = "step-00000030"
    if how == "manifest missing":
        remove_key(store, f"{key}/manifest.json")
        return "manifest.json missing"
    if how == "file missing":
        remove_key(store, f"{key}/optimizer.safetensors")
        return "optimizer.safetensors missing"
    if how == "size lie":
        grow_file(store, f"{key}/model.safetensors")
        return "model.safetensors is"
    flip_byte(store, f"{key}/model.safetensors")
    return "sha256 mismatch"


@pytest.mark.parametrize("how", ["manifest missing", "file missing", "size lie", "byte flipped"])
def test_torn_newest_falls_back_with_warning(
    store: ObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    mgr = save_steps(store, tmp_path / "stage", [(10, 0.1), (20, 0.2), (30, 0.3)])
    problem = _tear(store, how)
    caplog.set_level(logging.WARNING, logger="app.checkpoint")
    loaded = mgr.load_latest()
    assert loaded is not None and loaded.ref.step == 20
    assert np.array_equal(loaded.tensors["model"]["linear.bias"], np.full(3, 20, np.float32))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("step 30" in w and problem in w for w in warnings), warnings
    if how == "byte flipped":  # only hashing can see it: latest() checks listing and sizes
        assert mgr.latest().step == 30
        with pytest.raises(CheckpointError, match="model.safetensors: sha256 mismatch"):
            mgr.load(mgr.latest())
    else:
        assert mgr.latest().step == 20


def test_nothing_committed_means_no_latest(store: ObjectStore, tmp_path: Path) -> None:
    mgr = CheckpointManager(store, CheckpointConfig(async_save=False), tmp_path / "stage")
    assert mgr.latest() is None and mgr.load_latest() is None
    store.put_bytes("step-00000005/model.safetensors", b"partial")
    assert mgr.latest() is None and mgr.committed_steps() == []


def test_retention_keeps_last_two_and_best_one(store: ObjectStore, tmp_path: Path) -> None:
    saves = [(10, 0.5), (20, 0.9), (30, 0.4), (40, 0.6), (50, 0.3)]
    mgr = save_steps(store, tmp_path / "stage", saves, keep_last=2, keep_best=1, best_metric="accuracy")
    assert mgr.committed_steps() == [20, 40, 50]
    assert _keys(store, 10) == [] and _keys(store, 30) == []  # objects really deleted, not just un-committed


def test_retention_min_mode_and_protected_resume_from(store: ObjectStore, tmp_path: Path) -> None:
    mgr = save_steps(store, tmp_path / "stage", [(10, 0.5), (20, 0.1)])
    resumed = mgr.latest()
    assert resumed is not None and resumed.step == 20
    mgr.cfg = CheckpointConfig(
        keep_last=1, keep_best=1, best_metric="accuracy", best_mode="min", async_save=False
    )
    mgr.protect(resumed)
    for step, loss in [(30, 0.9), (40, 0.8)]:
        mgr.save(make_snapshot(step, {"accuracy": loss}))
    assert mgr.committed_steps() == [20, 40]  # 20: protected and best (min); 40: last


def test_tags_protect_and_resolve(
    store: ObjectStore, tmp_path: Path, store_cfg: StoreConfig | None, store_uri: str
) -> None:
    mgr = save_steps(store, tmp_path / "stage", [(10, 0.1), (20, 0.2)])
    ref10 = next(s for s in scan(store) if s.step == 10).ref
    promote(store, ref10, "v1", "first release")
    tag = json.loads(store.get_bytes("tags/v1.json"))
    assert (
        tag["step"] == 10
        and tag["manifest_sha256"] == ref10.manifest_sha256
        and tag["note"] == "first release"
    )
    mgr.cfg = CheckpointConfig(keep_last=1, keep_best=0, async_save=False)
    mgr.save(make_snapshot(30, {"accuracy": 0.3}))
    assert mgr.committed_steps() == [10, 30]
    loaded = open_source(f"{store_uri}#v1", store_cfg, allow_pickle=False, staging_dir=tmp_path / "src")
    assert loaded.ref.step == 10 and loaded.ref.manifest_sha256 == ref10.manifest_sha256
    with pytest.raises(CheckpointError, match="no tag 'nope'"):
        open_source(f"{store_uri}#nope", store_cfg, allow_pickle=False, staging_dir=tmp_path / "src")


def test_tag_detects_rewritten_checkpoint(
    store: ObjectStore, tmp_path: Path, store_cfg: StoreConfig | None, store_uri: str
) -> None:
    mgr = save_steps(store, tmp_path / "stage", [(10, 0.1)])
    promote(store, mgr.latest(), "v1")
    manifest = store.get_bytes("step-00000010/manifest.json")
    store.put_bytes(
        "step-00000010/manifest.json", manifest.replace(b'"step": 10', b'"step":  10'), overwrite=True
    )
    with pytest.raises(CheckpointError, match="tag 'v1': manifest of step 10 has sha256"):
        open_source(f"{store_uri}#v1", store_cfg, allow_pickle=False, staging_dir=tmp_path / "src")


def test_open_source_root_and_step_folder(
    store: ObjectStore, tmp_path: Path, store_cfg: StoreConfig | None, store_uri: str
) -> None:
    save_steps(store, tmp_path / "stage", [(10, 0.1), (20, 0.2)])
    cfg = store_cfg
    assert open_source(store_uri, cfg, allow_pickle=False, staging_dir=tmp_path / "s").ref.step == 20
    step10 = open_source(f"{store_uri}/step-00000010", cfg, allow_pickle=False, staging_dir=tmp_path / "s")
    assert step10.ref.step == 10
    assert np.array_equal(step10.tensors["optimizer"]["global_step"], np.array([10]))
    assert not any((tmp_path / "s").rglob("*.safetensors"))  # downloads cleaned up


def test_leftovers_cleaned_only_when_old(store: ObjectStore, tmp_path: Path) -> None:
    mgr = save_steps(store, tmp_path / "stage", [(10, 0.1)], leftover_minutes=30.0)
    store.put_bytes("step-00000020/.started", json.dumps({"utc": "2020-01-01T00:00:00Z"}).encode())
    store.put_bytes("step-00000020/model.safetensors", b"torn")
    store.put_bytes("step-00000030/.started", json.dumps({"utc": _now()}).encode())
    store.put_bytes("step-00000030/model.safetensors", b"in progress elsewhere")
    plan = mgr.plan_gc()
    assert list(plan.leftovers) == [20] and "started" in plan.leftovers[20]
    assert mgr.gc() == [20]
    assert _keys(store, 20) == [] and len(_keys(store, 30)) == 2 and mgr.committed_steps() == [10]


def _now() -> str:
    from app.checkpoint.lineage import utc_now

    return utc_now()


def test_resaving_a_torn_step_replaces_its_leftovers(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("step-00000010/model.safetensors", b"garbage from a crashed save")
    mgr = save_steps(store, tmp_path / "stage", [(10, 0.1)])
    assert _keys(store, 10) == [f"step-00000010/{name}" for name in FILES]
    assert mgr.load(mgr.latest()).ref.step == 10
