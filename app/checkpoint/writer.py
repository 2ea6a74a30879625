"""Write one checkpoint to a store: marker first, then every file with its hash, the manifest last.

The order is the commit protocol. ``.started`` (UTC time, host, pid) lets gc age an uncommitted folder
without trusting modification times. Tensor groups are serialized into a local staging folder and
uploaded; on a local-folder store they are written straight into the step folder under a hidden
temporary name, fsynced and renamed, so the bytes are written once. Every file's size and sha256 come
from the bytes as they are written (:class:`~app.checkpoint.tensorio.HashingWriter`), never from reading
the file back: the manifest records what this save meant to write, so bytes that change on disk
afterwards fail verification instead of being blessed. ``manifest.json`` is written only after every
file is in place, and nothing else marks a checkpoint as existing.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.checkpoint.jsonread import read_json
from app.checkpoint.layout import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
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
from app.checkpoint.tensorio import Written, write_bytes, write_tensors
from app.errors import CheckpointError
from app.store.base import NotFoundError, ObjectStore

__all__ = ["PreparedSave", "write_checkpoint", "staging_path", "read_manifest_ref", "read_started"]

log = logging.getLogger(__name__)

#: Writes one file at the given path (fsynced when the flag is set) and returns what it wrote.
Fill = Callable[[Path, bool], Written]

#: A ``.started`` marker is ~100 bytes.
MAX_MARKER_BYTES = 64 << 10


@dataclass
class PreparedSave:
    """A snapshot made ready on the training thread: tensors owned by the saver, JSON already encoded."""

    step: int
    tensors: dict[str, dict[str, np.ndarray]]
    state_json: bytes
    meta_json: bytes
    metrics: dict
    #: Called once the save is over (committed or failed): hands reused host buffers back.
    release: Callable[[], None] | None = None


def staging_path(staging_dir: Path, step: int) -> Path:
    return Path(staging_dir) / step_key(step)


class _StagedSink:
    """Serialize into a local staging folder and hash (``stage``, before the store is asked anything, so a
    store that is down leaves the whole snapshot on local disk), then upload (``write``)."""

    def __init__(self, store: ObjectStore, key: str, folder: Path) -> None:
        self.store, self.key, self.folder = store, key, folder
        self._staged: dict[str, FileEntry] = {}
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)

    def stage(self, name: str, fill: Fill) -> None:
        written = fill(self.folder / name, False)  # staging is scratch: the store makes the upload durable
        self._staged[name] = FileEntry(name, written.size, written.sha256)

    def write(self, name: str, fill: Fill) -> FileEntry:
        if name not in self._staged:
            self.stage(name, fill)
        self.store.upload_file(self.folder / name, f"{self.key}/{name}")
        return self._staged[name]

    def done(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _LocalSink:
    """Write straight into the step folder of a local store: hidden temporary name, fsync, rename."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        from app.store.local import TEMP_TAG

        self.folder = store.local_path(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f".*{TEMP_TAG}*"):  # an earlier save of this step was killed mid-write
            stale.unlink(missing_ok=True)

    def write(self, name: str, fill: Fill) -> FileEntry:
        from app.store.local import TEMP_TAG  # hidden temporary names the local store's listing skips

        target = self.folder / name
        tmp = self.folder / f".{name}{TEMP_TAG}{secrets.token_hex(6)}"
        try:
            written = fill(tmp, True)  # fsynced before the rename, so a crash never leaves a torn file
            entry = FileEntry(name, written.size, written.sha256)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return entry

    def done(self) -> None:
        return None


def _bytes_fill(data: bytes) -> Fill:
    return lambda path, fsync: write_bytes(data, path, fsync=fsync)


def _tensor_fill(group: str, tensors: dict[str, np.ndarray], where: str) -> Fill:
    return lambda path, fsync: write_tensors(tensors, path, f"{where}/{group}{TENSOR_SUFFIX}", fsync=fsync)


def read_manifest_ref(store: ObjectStore, key: str, step: int) -> CheckpointRef:
    """The ref of an already committed step; its manifest must be one this tool can read.

    A manifest that exists but does not parse (a newer format version, corruption) is never replaced:
    the save fails loudly instead, so the folder is kept for a person to inspect.
    """
    where = store.describe(f"{key}/{MANIFEST}")
    data = store.get_bytes(f"{key}/{MANIFEST}", max_bytes=MAX_MANIFEST_BYTES)
    try:
        Manifest.parse(data, where)
    except CheckpointError as exc:
        raise CheckpointError(
            f"cannot save step {step}: {store.describe(key)} already holds a manifest this tool cannot "
            f"read ({exc.message})",
            hint="it is kept; move that step folder away (or use a newer warmstart) and run again",
        ) from None
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
    files = [(f"{g}{TENSOR_SUFFIX}", _tensor_fill(g, t, where)) for g, t in job.tensors.items()]
    files += [(TRAINER_STATE, _bytes_fill(job.state_json)), (META, _bytes_fill(job.meta_json))]
    staged = None
    if not store.is_local:
        staged = _StagedSink(store, key, staging_path(staging_dir, job.step))
        for name, fill in files:
            staged.stage(name, fill)
    if store.exists(f"{key}/{MANIFEST}"):
        log.info("%s is already committed; not saving step %d again", where, job.step)
        if staged is not None:
            staged.done()
        return read_manifest_ref(store, key, job.step)
    _clear_leftovers(store, key)
    store.put_bytes(f"{key}/{STARTED}", _started_marker())
    sink = staged if staged is not None else _LocalSink(store, key)
    entries = [sink.write(name, fill) for name, fill in files]
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
    """The ``.started`` marker of a step folder; None when it is missing or not a small JSON object.
    Store errors raise."""
    try:
        value = read_json(store, f"{key}/{STARTED}", max_bytes=MAX_MARKER_BYTES)
    except (NotFoundError, CheckpointError):
        return None
    return value if isinstance(value, dict) else None
