"""Cheaper background saves (#16 item 3): hashes come from the bytes as they are written, not a re-read;
the save thread runs at a lower priority than training.

The digests are the ones the re-read path gives on the same files, and byte for byte the ones the
writer produced before (golden values taken from the previous implementation). A file whose bytes change
on disk after they were written is caught by ``ckpt verify``: the manifest holds what the save wrote.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from ckpt_helpers import expected_tensors, make_snapshot, manifest_of

from app.checkpoint import CheckpointConfig, CheckpointManager
from app.checkpoint import writer as writer_mod
from app.checkpoint.saver import SAVE_NICE, SaveWorker
from app.checkpoint.tensorio import CHUNK_BYTES, sha256_file, write_bytes, write_tensors
from app.cli import main
from app.store import ObjectStore

TENSOR_FILES = ("model.safetensors", "optimizer.safetensors")


def _golden_tensors() -> dict[str, np.ndarray]:
    """Every layout the writer handles: > one write chunk, big-endian, transposed, 0-d, empty, bool."""
    tensors = dict(expected_tensors(7)["model"])
    tensors["big.f32"] = np.arange(1_300_000, dtype=np.float32)
    tensors["swapped.be"] = np.arange(12, dtype=">i4").reshape(3, 4)
    tensors["strided.t"] = np.arange(20, dtype=np.float64).reshape(4, 5).T
    tensors["scalar"] = np.array(2.5, dtype=np.float32)
    tensors["empty"] = np.zeros((0, 3), dtype=np.int64)
    tensors["flags"] = np.array([True, False, True])
    return tensors


#: sha256 and size of the files the writer produced before hashing moved into it (commit 576f5ba).
GOLDEN = {
    "mixed": ("f54b493bc378290764843e98c5f8887522679418908ccb1eb7a4d11a437eea6a", 5201081),
    "model7": ("bdc719c0f6a59492970f414231327c262184610ee786e3c86b00d6bc3f0576ef", 410),
}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_hash_while_writing_equals_the_reread_and_the_previous_bytes(case: str, tmp_path: Path) -> None:
    tensors = _golden_tensors() if case == "mixed" else expected_tensors(7)["model"]
    path = tmp_path / "t.safetensors"
    written = write_tensors(tensors, path, "t")
    assert path.stat().st_size > CHUNK_BYTES or case != "mixed"  # the chunked path is exercised
    assert (written.sha256, written.size) == (sha256_file(path), path.stat().st_size)
    assert (written.sha256, written.size) == GOLDEN[case]


def test_write_bytes_hashes_what_it_writes(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_BYTES + 123)
    written = write_bytes(data, tmp_path / "b", fsync=True)
    assert (written.sha256, written.size) == (sha256_file(tmp_path / "b"), len(data))
    assert (tmp_path / "b").read_bytes() == data


def _verify(capsys: pytest.CaptureFixture, uri: str) -> tuple[int, str]:
    code = main(["ckpt", "verify", uri])
    return code, capsys.readouterr().out


@pytest.fixture
def store(store_uri: str, open_test_store, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:  # noqa: ANN001
    opened = open_test_store(store_uri)
    if store_uri.startswith("s3://"):  # the in-process CLI reaches the same server through the env
        monkeypatch.setenv("WARMSTART_S3_ENDPOINT_URL", opened.cfg.endpoint_url)
        monkeypatch.setenv("WARMSTART_S3_REGION", "us-east-1")
        monkeypatch.setenv("WARMSTART_S3_ADDRESSING_STYLE", "path")
    return opened


def _save(store: ObjectStore, tmp_path: Path, step: int, *, async_save: bool = False) -> None:
    mgr = CheckpointManager(
        store, CheckpointConfig(keep_last=None, keep_best=0, async_save=async_save), tmp_path
    )
    mgr.save(make_snapshot(step))
    mgr.close()


def test_manifest_hashes_equal_a_reread_of_the_committed_files(store: ObjectStore, tmp_path: Path) -> None:
    _save(store, tmp_path / "stage", 3, async_save=True)
    entries = {e["name"]: e for e in manifest_of(store, 3)["files"]}
    assert sorted(entries) == [
        "meta.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    for name, entry in entries.items():
        local = tmp_path / name
        store.download_file(f"step-00000003/{name}", local)
        assert (entry["sha256"], entry["size"]) == (sha256_file(local), local.stat().st_size), name


@pytest.mark.parametrize("name", ["model.safetensors", "trainer_state.json"])
def test_bytes_changed_on_disk_after_writing_fail_verify(
    name: str,
    store: ObjectStore,
    store_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The file changes between the write and the upload/rename (bit rot, a stray writer): the manifest
    holds the hash of what the save wrote, so verification fails instead of blessing the changed bytes."""
    fills = {"model.safetensors": "write_tensors", "trainer_state.json": "write_bytes"}
    real = getattr(writer_mod, fills[name])
    target = name.split(".")[0]

    def write_then_damage(data, path: Path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        written = real(data, path, *args, **kwargs)
        if target in path.name:
            raw = bytearray(path.read_bytes())
            raw[-1] ^= 0xFF  # same size: only the hash can tell
            path.write_bytes(bytes(raw))
        return written

    monkeypatch.setattr(writer_mod, fills[name], write_then_damage)
    _save(store, tmp_path / "stage", 5)
    code, out = _verify(capsys, store_uri)
    assert code == 4
    assert f"step 5: FAILED: {store_uri}/step-00000005/{name}: sha256 mismatch" in out


def _nice_of(tid: int) -> tuple[int, int]:
    """(os.getpriority, the nice field of /proc/self/task/<tid>/stat) of one thread."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # field 3 (state) is fields[0]; nice is field 19
    return os.getpriority(os.PRIO_PROCESS, tid), int(fields[19 - 3])


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="per-thread nice values are Linux's")
def test_save_thread_runs_at_lower_priority_training_thread_does_not() -> None:
    seen: dict[str, tuple[int, int]] = {}
    base = _nice_of(threading.get_native_id())

    def job(prepared):  # noqa: ANN001, ANN202
        seen["save"] = _nice_of(threading.get_native_id())
        return None

    worker = SaveWorker(job, background=True, kept_at=lambda step: Path("/nowhere"))
    worker.submit(writer_mod.PreparedSave(1, {}, b"{}", b"{}", {}))
    worker.close()
    expected = min(19, base[0] + SAVE_NICE)
    assert SAVE_NICE > 0
    assert seen["save"] == (expected, expected)
    assert _nice_of(threading.get_native_id()) == base  # the caller's own priority is untouched


def test_synchronous_save_stays_on_the_callers_priority() -> None:
    seen: list[tuple[int, int]] = []
    base = _nice_of(threading.get_native_id())
    worker = SaveWorker(lambda p: seen.append(_nice_of(threading.get_native_id())), background=False,
                        kept_at=lambda step: Path("/nowhere"))  # fmt: skip
    worker.submit(writer_mod.PreparedSave(1, {}, b"{}", b"{}", {}))
    worker.close()
    assert seen == [base]
