"""Write one checkpoint to a store: marker first, then every file with its hash, the manifest last.

The order is the commit protocol. ``.started`` (UTC time, host, pid) lets gc age an uncommitted folder
without trusting modification times. Tensor groups are serialized into a local staging folder, hashed and
uploaded; on a local-folder store they are written straight into the step folder under a hidden
temporary name and renamed, so the bytes are written once. ``manifest.json`` is written only after every
file is in place, and nothing else marks a checkpoint as existing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.checkpoint.layout import (
    MANIFEST,
    META,
    STARTED,
    TENSOR_SUFFIX,
    TRAINER_STATE,
    CheckpointRef,
    FileEntry,
    Manifest,
    json_bytes,
    sha256_bytes,
    step_key,
)
from app.checkpoint.lineage import utc_now
from app.checkpoint.tensorio import sha256_file, write_tensors
from app.store.base import NotFoundError, ObjectStore

__all__ = ["PreparedSave", "write_checkpoint", "staging_path", "read_manifest_ref", "read_started"]

log = logging.getLogger(__name__)

Fill = Callable[[Path], None]


@dataclass
class PreparedSave:
    """A snapshot made ready on the training thread: tensors owned by the saver, JSON already encoded."""

    step: int
    tensors: dict[str, dict[str, np.ndarray]]
    state_json: bytes
    meta_json: bytes
    metrics: dict


def staging_path(staging_dir: Path, step: int) -> Path:
    return Path(staging_dir) / step_key(step)


class _StagedSink:
    """Serialize into a local staging folder, hash, upload."""

    def __init__(self, store: ObjectStore, key: str, folder: Path) -> None:
        self.store, self.key, self.folder = store, key, folder
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

    def write(self, name: str, fill: Fill) -> FileEntry:
        path = self.folder / name
        fill(path)
        entry = FileEntry(name, path.stat().st_size, sha256_file(path))
        self.store.upload_file(path, f"{self.key}/{name}")
        return entry

    def done(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _LocalSink:
    """Write straight into the step folder of a local store: hidden temporary name, fsync, rename."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self.folder = store.local_path(key)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, fill: Fill) -> FileEntry:
        from app.store.local import TEMP_TAG  # hidden temporary names the local store's listing skips

        target = self.folder / name
        tmp = self.folder / f".{name}{TEMP_TAG}{secrets.token_hex(6)}"
        try:
            fill(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            entry = FileEntry(name, tmp.stat().st_size, sha256_file(tmp))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return entry

    def done(self) -> None:
        return None


def _bytes_fill(data: bytes) -> Fill:
    return lambda path: path.write_bytes(data)


def _tensor_fill(group: str, tensors: dict[str, np.ndarray], where: str) -> Fill:
    return lambda path: write_tensors(tensors, path, f"{where}/{group}{TENSOR_SUFFIX}")


def read_manifest_ref(store: ObjectStore, key: str, step: int) -> CheckpointRef:
    data = store.get_bytes(f"{key}/{MANIFEST}")
    return CheckpointRef(step, store.describe(key), sha256_bytes(data), key)


def _clear_leftovers(store: ObjectStore, key: str) -> None:
    stale = [info.key for info in store.list(f"{key}/")]
    if stale:
        log.warning(
            "%s: removing %d object(s) of an earlier uncommitted save of this step",
            store.describe(key),
            len(stale),
        )
        store.delete(stale)


def _started_marker() -> bytes:
    return json_bytes({"utc": utc_now(), "host": socket.gethostname(), "pid": os.getpid()}, "marker")


def write_checkpoint(store: ObjectStore, job: PreparedSave, staging_dir: Path) -> CheckpointRef:
    """Write ``job`` as ``step-N`` and commit it. Raises StorageError/CheckpointError; never half-commits."""
    key = step_key(job.step)
    where = store.describe(key)
    if store.exists(f"{key}/{MANIFEST}"):
        log.info("%s is already committed; not saving step %d again", where, job.step)
        return read_manifest_ref(store, key, job.step)
    _clear_leftovers(store, key)
    store.put_bytes(f"{key}/{STARTED}", _started_marker())
    sink = (
        _LocalSink(store, key)
        if store.is_local
        else _StagedSink(store, key, staging_path(staging_dir, job.step))
    )
    entries = [sink.write(f"{g}{TENSOR_SUFFIX}", _tensor_fill(g, t, where)) for g, t in job.tensors.items()]
    entries.append(sink.write(TRAINER_STATE, _bytes_fill(job.state_json)))
    entries.append(sink.write(META, _bytes_fill(job.meta_json)))
    manifest = Manifest(job.step, utc_now(), entries).to_bytes()
    store.put_bytes(f"{key}/{MANIFEST}", manifest)  # the commit
    sink.done()
    try:
        store.delete([f"{key}/{STARTED}"])
    except Exception as exc:  # noqa: BLE001  (the checkpoint is committed; a stray marker is harmless)
        log.warning("%s: committed, but could not remove its %s marker: %s", where, STARTED, exc)
    log.info("committed %s (%d files, %d bytes)", where, len(entries) + 1, sum(e.size for e in entries))
    return CheckpointRef(job.step, where, sha256_bytes(manifest), key)


def read_started(store: ObjectStore, key: str) -> dict | None:
    """The ``.started`` marker of a step folder; None when it is missing or not JSON. Store errors raise."""
    try:
        return json.loads(store.get_bytes(f"{key}/{STARTED}").decode("utf-8"))
    except NotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        return None
