"""Helpers for the checkpoint tests: deterministic snapshots, store wrappers that fail or block, and
ways to tear a committed checkpoint through the store interface (so they work on S3 too)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.checkpoint import CheckpointConfig, CheckpointManager, Snapshot
from app.store.base import ObjectInfo, ObjectStore, TransientStorageError

__all__ = [
    "make_snapshot",
    "rng_state",
    "expected_tensors",
    "save_steps",
    "DelegatingStore",
    "FailingStore",
    "GatedStore",
    "flip_byte",
    "grow_file",
    "remove_key",
    "manifest_of",
    "replace_hash_valid",
    "store_hashes",
]


def expected_tensors(step: int) -> dict[str, dict[str, np.ndarray]]:
    """Values that differ per step, in the dtypes a trainer hands over (float32, int64, float16, uint16)."""
    rng = np.random.default_rng(step)
    return {
        "model": {
            "linear.weight": rng.standard_normal((4, 3)).astype(np.float32),
            "linear.bias": np.full(3, step, dtype=np.float32),
            "embed.half": rng.standard_normal(5).astype(np.float16),
            "bf16.bits": np.arange(6, dtype=np.uint16) + step,
        },
        "optimizer": {
            "linear.weight_moment1": rng.standard_normal((4, 3)).astype(np.float32),
            "global_step": np.array([step], dtype=np.int64),
        },
    }


def rng_state(seed: int) -> dict:
    """A valid RNG state in the shape ``app.train.rng.capture`` writes (without importing paddle)."""
    py = random.Random(seed).getstate()
    name, keys, pos, has_gauss, cached = np.random.RandomState(seed).get_state()
    return {
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
        "numpy": {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
    }  # fmt: skip


def make_snapshot(step: int, metrics: dict | None = None) -> Snapshot:
    state = {"step": step, "epoch": step // 10, "data": {"epoch": step // 10, "samples_in_epoch": step % 10},
             "position_in_epoch": step % 10, "world_size": 1,
             "global_batch_size": 8, "scheduler": {"last_epoch": step}, "rng": rng_state(step)}  # fmt: skip
    meta = {"config": {"run": {"name": "t"}}, "config_hash": "abc123", "metrics": metrics or {},
            "data_source": "digits", "notes": f"step {step}", "parent": None}  # fmt: skip
    return Snapshot(step=step, tensors=expected_tensors(step), state=state, meta=meta)


def save_steps(
    store: ObjectStore, staging: Path, steps_metrics: list[tuple[int, float]], **cfg: object
) -> CheckpointManager:
    """Save ``(step, accuracy)`` pairs synchronously with retention off unless ``cfg`` says otherwise."""
    config = CheckpointConfig(**{"keep_last": None, "keep_best": 0, "async_save": False, **cfg})
    mgr = CheckpointManager(store, config, staging)
    for step, acc in steps_metrics:
        mgr.save(make_snapshot(step, {"accuracy": acc}))
    mgr.flush()
    return mgr


class DelegatingStore(ObjectStore):
    """Forwards everything to ``inner``; reports itself as remote so the manager stages and uploads."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.uri = inner.uri

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def upload_file(self, local: Path, key: str, *, overwrite: bool = False) -> None:
        self.inner.upload_file(local, key, overwrite=overwrite)

    def download_file(self, key: str, local: Path) -> None:
        self.inner.download_file(key, local)

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        self.inner.put_bytes(key, data, overwrite=overwrite)

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        return self.inner.get_bytes(key, max_bytes=max_bytes)

    def delete(self, keys: list[str]) -> None:
        self.inner.delete(keys)


class FailingStore(DelegatingStore):
    """Uploads of files whose key ends with ``fail_suffix`` fail as if retries were exhausted."""

    def __init__(self, inner: ObjectStore, fail_suffix: str) -> None:
        super().__init__(inner)
        self.fail_suffix = fail_suffix

    def upload_file(self, local: Path, key: str, *, overwrite: bool = False) -> None:
        if key.endswith(self.fail_suffix):
            raise TransientStorageError(f"{self.describe(key)}: SlowDown; gave up after 6 attempts")
        super().upload_file(local, key, overwrite=overwrite)


class GatedStore(DelegatingStore):
    """Every upload waits until ``gate`` is set, so a save stays in flight as long as a test wants."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.uploading = threading.Event()

    def upload_file(self, local: Path, key: str, *, overwrite: bool = False) -> None:
        self.uploading.set()
        assert self.gate.wait(30), "test never opened the gate"
        super().upload_file(local, key, overwrite=overwrite)


def flip_byte(store: ObjectStore, key: str, offset: int = -1) -> None:
    data = bytearray(store.get_bytes(key))
    data[offset] ^= 0xFF
    store.put_bytes(key, bytes(data), overwrite=True)


def grow_file(store: ObjectStore, key: str) -> None:
    store.put_bytes(key, store.get_bytes(key) + b"\0", overwrite=True)


def remove_key(store: ObjectStore, key: str) -> None:
    store.delete([key])


def manifest_of(store: ObjectStore, step: int) -> dict:
    return json.loads(store.get_bytes(f"step-{step:08d}/manifest.json"))


def replace_hash_valid(store: ObjectStore, step: int, name: str, data: bytes) -> None:
    """Give ``name`` of ``step`` new bytes and update its manifest entry, so every sha256 still matches
    (a crafted file that only a schema check can catch)."""
    key = f"step-{step:08d}"
    manifest = manifest_of(store, step)
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    store.put_bytes(f"{key}/{name}", data, overwrite=True)
    store.put_bytes(f"{key}/manifest.json", json.dumps(manifest).encode(), overwrite=True)


def store_hashes(store: ObjectStore, *steps: int) -> dict[str, str]:
    """key -> sha256 of every object of ``steps`` (to prove that good checkpoints were not touched)."""
    prefixes = tuple(f"step-{s:08d}/" for s in steps)
    keys = [info.key for info in store.list("") if info.key.startswith(prefixes)]
    return {key: hashlib.sha256(store.get_bytes(key)).hexdigest() for key in keys}


def crafted_root(
    request: Any, store_uri: str, steps: list[tuple[int, float]], s3_cases: set[str]
) -> ObjectStore:
    """Three committed steps on the store of the ``store_uri`` fixture, for the crafted-file tests; on S3
    only the cases named in ``s3_cases`` run (the local store runs every case). The ``ckpt`` CLI is pointed
    at the same S3 server through the environment. ``store_uri`` must be a parameter of the calling
    fixture (that is what parametrizes it over the backends)."""
    case = getattr(request.node, "callspec", None) and request.node.callspec.params.get("case")
    if store_uri.startswith("s3://") and case and case not in s3_cases:
        pytest.skip("covered on the local store; S3 runs a representative subset")
    store = request.getfixturevalue("open_test_store")(store_uri)
    save_steps(store, request.getfixturevalue("tmp_path") / "stage", steps)
    if store_uri.startswith("s3://"):
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("WARMSTART_S3_ENDPOINT_URL", store.cfg.endpoint_url)
        monkeypatch.setenv("WARMSTART_S3_REGION", "us-east-1")
        monkeypatch.setenv("WARMSTART_S3_ADDRESSING_STYLE", "path")
    return store


def ckpt_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """``warmstart ckpt ARGV`` in-process: (exit code, stdout, stderr); never a traceback."""
    from app.cli import main

    capsys.readouterr()  # drop earlier output (a log handler left on a closed stream by an earlier test)
    code = main(["ckpt", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err
