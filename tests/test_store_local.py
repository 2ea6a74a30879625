"""Local-folder backend specifics: atomic publishing, temp files, key checks, error translation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import EXIT_STORAGE
from app.store import AccessDeniedError, AlreadyExistsError, NotFoundError, open_store
from app.store.local import TEMP_TAG, LocalStore


def test_layout_is_plain_files(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "root"))
    store.put_bytes("step-00000001/meta.json", b"{}")
    assert (tmp_path / "root" / "step-00000001" / "meta.json").read_bytes() == b"{}"
    assert store.local_path("step-00000001/meta.json") == tmp_path / "root" / "step-00000001" / "meta.json"


def test_temp_files_are_ignored_by_list(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/x", b"1")
    (tmp_path / "a" / f".y{TEMP_TAG}abc").write_bytes(b"partial")
    assert [i.key for i in store.list()] == ["a/x"]


def test_no_temp_left_after_refused_overwrite(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("k", b"old")
    with pytest.raises(AlreadyExistsError) as info:
        store.put_bytes("k", b"new")
    assert info.value.exit_code == EXIT_STORAGE
    assert store.get_bytes("k") == b"old"
    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_list_prefix_inside_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ["step-2/a", "step-10/a", "step-1/b", "step-1/a", "other"]:
        store.put_bytes(key, key.encode())
    assert [i.key for i in store.list("step-1/")] == ["step-1/a", "step-1/b"]
    assert [i.key for i in store.list("step-1")] == ["step-1/a", "step-1/b", "step-10/a"]
    assert store.list("missing/") == []


def test_delete_prunes_empty_folders_but_not_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.put_bytes("s/a/b", b"1")
    store.delete(["s/a/b"])
    assert (tmp_path / "root").is_dir()
    assert os.listdir(tmp_path / "root") == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../x", "a/./b", "a\\b"])
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        LocalStore(tmp_path).put_bytes(key, b"x")


def test_missing_key_names_uri(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(NotFoundError, match=str(tmp_path / "nope")):
        store.download_file("nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_permission_denied_is_access_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(target: Path, fill: object) -> Path:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr("app.store.local._write_temp", refuse)  # root ignores modes, so simulate
    with pytest.raises(AccessDeniedError, match="permission denied while trying to write"):
        LocalStore(tmp_path).put_bytes("x", b"1")
