"""One contract for every store backend, run over the local folder and S3 (a real moto_server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import EXIT_STORAGE
from app.store import (
    AlreadyExistsError,
    NoSuchBucketError,
    NotFoundError,
    ObjectInfo,
    ObjectStore,
)

OpenStore = Callable[[str], ObjectStore]


@pytest.fixture
def store(store_uri: str, open_test_store: OpenStore) -> ObjectStore:
    return open_test_store(store_uri)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_put_get_bytes(store: ObjectStore) -> None:
    store.put_bytes("step-00000001/meta.json", b'{"step": 1}')
    assert store.get_bytes("step-00000001/meta.json") == b'{"step": 1}'
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


def test_exists(store: ObjectStore) -> None:
    assert not store.exists("a/b")
    store.put_bytes("a/b", b"x")
    assert store.exists("a/b")
    assert not store.exists("a")  # a "folder" is not an object


def test_list_prefix_sorted_with_sizes(store: ObjectStore) -> None:
    for key, size in [("step-10/m", 3), ("step-2/m", 5), ("step-2/o", 1), ("step-1/m", 2), ("tags/best", 0)]:
        store.put_bytes(key, b"x" * size)
    assert store.list() == [
        ObjectInfo("step-1/m", 2),
        ObjectInfo("step-10/m", 3),
        ObjectInfo("step-2/m", 5),
        ObjectInfo("step-2/o", 1),
        ObjectInfo("tags/best", 0),
    ]
    assert [i.key for i in store.list("step-2/")] == ["step-2/m", "step-2/o"]
    assert [i.key for i in store.list("step-1")] == ["step-1/m", "step-10/m"]
    assert store.list("nothing/") == []


def test_upload_download_multipart_roundtrip(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "model.safetensors"
    src.write_bytes(os.urandom(12 * 1024 * 1024 + 123))  # > part size (5 MiB in the S3 test config)
    store.upload_file(src, "step-00000100/model.safetensors")
    assert store.list("step-00000100/") == [ObjectInfo("step-00000100/model.safetensors", src.stat().st_size)]
    out = tmp_path / "down" / "model.safetensors"
    store.download_file("step-00000100/model.safetensors", out)
    assert sha256(out) == sha256(src)
    assert os.listdir(out.parent) == ["model.safetensors"]  # no .part- leftovers


def test_download_replaces_existing_local_file(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("k", b"new")
    out = tmp_path / "k"
    out.write_bytes(b"old contents")
    store.download_file("k", out)
    assert out.read_bytes() == b"new"


def test_overwrite_refused_then_allowed(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("manifest.json", b"v1")
    with pytest.raises(AlreadyExistsError) as info:
        store.put_bytes("manifest.json", b"v2")
    assert store.describe("manifest.json") in str(info.value)
    assert info.value.exit_code == EXIT_STORAGE
    src = tmp_path / "f"
    src.write_bytes(b"v3")
    with pytest.raises(AlreadyExistsError):
        store.upload_file(src, "manifest.json")
    assert store.get_bytes("manifest.json") == b"v1"
    store.put_bytes("manifest.json", b"v2", overwrite=True)
    assert store.get_bytes("manifest.json") == b"v2"
    store.upload_file(src, "manifest.json", overwrite=True)
    assert store.get_bytes("manifest.json") == b"v3"
    assert [i.key for i in store.list()] == ["manifest.json"]


def test_missing_key(store: ObjectStore, tmp_path: Path) -> None:
    out = tmp_path / "out" / "x.bin"
    with pytest.raises(NotFoundError) as info:
        store.download_file("step-1/x.bin", out)
    assert store.describe("step-1/x.bin") in str(info.value)
    assert info.value.exit_code == EXIT_STORAGE
    assert not out.exists()
    assert not out.parent.exists() or os.listdir(out.parent) == []  # no temp leftovers
    with pytest.raises(NotFoundError, match="step-1/x.bin"):
        store.get_bytes("step-1/x.bin")


def test_delete_batch_ignores_missing(store: ObjectStore) -> None:
    keys = [f"step-1/shard-{i:04d}" for i in range(5)]
    for key in keys:
        store.put_bytes(key, b"x")
    store.put_bytes("keep", b"k")
    store.delete([*keys, "never-existed", "step-9/also-missing"])
    assert [i.key for i in store.list()] == ["keep"]
    store.delete([])


def test_upload_of_missing_local_file(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        store.upload_file(tmp_path / "absent", "k")


def test_invalid_keys_refused(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        store.put_bytes("../escape", b"x")


def test_describe_names_the_root(store: ObjectStore, store_uri: str) -> None:
    assert store.uri == store_uri
    assert store.describe("step-1/a") == store_uri.rstrip("/") + "/step-1/a"


def test_missing_bucket_is_named(open_test_store: OpenStore, tmp_path: Path) -> None:
    store = open_test_store("s3://no-such-bucket-here/ckpts")
    for action in (
        lambda: store.list(),
        lambda: store.get_bytes("k"),
        lambda: store.download_file("k", tmp_path / "k"),
        lambda: store.exists("k"),
        lambda: store.put_bytes("k", b"x"),
    ):
        with pytest.raises(NoSuchBucketError) as info:
            action()
        assert "'no-such-bucket-here' does not exist" in str(info.value)
        assert "create the bucket" in str(info.value)
