"""Load a committed checkpoint: re-hash every file against the manifest, then parse — pickle-free.

Only ``json`` and safetensors (``framework="np"``) ever read checkpoint bytes. Files of a remote store are
downloaded into a private folder under the staging directory, verified, read and removed; files of a
local store are verified and read in place.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint.jsonread import MAX_JSON_BYTES, json_object, parse_json, read_json
from app.checkpoint.layout import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    META,
    TENSOR_SUFFIX,
    TRAINER_STATE,
    CheckpointRef,
    Manifest,
    sha256_bytes,
)
from app.checkpoint.schema import check_meta, check_trainer_state
from app.checkpoint.tensorio import read_tensors, sha256_file
from app.errors import CheckpointError
from app.store.base import AccessDeniedError, NotFoundError, ObjectStore

__all__ = ["LoadedCheckpoint", "read_manifest", "read_json_file", "verify", "load"]

log = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    ref: CheckpointRef
    #: group -> tensor name -> array (``{"model": {...}, "optimizer": {...}}``).
    tensors: dict[str, dict[str, np.ndarray]]
    state: dict[str, Any]
    meta: dict[str, Any]
    manifest: Manifest | None = None


def read_manifest(store: ObjectStore, ref: CheckpointRef) -> Manifest:
    """The manifest of ``ref``; a CheckpointError if it is gone or is not the one ``ref`` names."""
    where = store.describe(ref.file_key(MANIFEST))
    try:
        data = store.get_bytes(ref.file_key(MANIFEST), max_bytes=MAX_MANIFEST_BYTES)
    except NotFoundError:
        raise CheckpointError(f"{ref.uri} is not a committed checkpoint: {where} does not exist") from None
    except AccessDeniedError as exc:  # e.g. a link out of the root: this step is unusable, not the run
        raise CheckpointError(exc.line()) from None
    found = sha256_bytes(data)
    if ref.manifest_sha256 and found != ref.manifest_sha256:
        raise CheckpointError(
            f"{where} changed: sha256 is {found[:12]}…, expected {ref.manifest_sha256[:12]}…",
            hint="the checkpoint was rewritten after it was recorded; pick it again",
        )
    manifest = Manifest.parse(data, where)
    if ref.step >= 0 and manifest.step != ref.step:
        raise CheckpointError(f"{where} says step {manifest.step}, expected step {ref.step}")
    return manifest


def _fetch(store: ObjectStore, ref: CheckpointRef, name: str, workdir: Path) -> Path:
    key = ref.file_key(name)
    try:
        if store.is_local:
            path = store.local_path(key)
            if not path.is_file():
                raise CheckpointError(f"{store.describe(key)} is missing (listed in the manifest)")
            return path
        target = workdir / name
        store.download_file(key, target)
    except NotFoundError:
        raise CheckpointError(f"{store.describe(key)} is missing (listed in the manifest)") from None
    except AccessDeniedError as exc:  # e.g. a link out of the root: this step is unusable, not the run
        raise CheckpointError(exc.line()) from None
    return target


def _verified_files(
    store: ObjectStore, ref: CheckpointRef, manifest: Manifest, workdir: Path
) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for entry in manifest.files:
        path = _fetch(store, ref, entry.name, workdir)
        where = store.describe(ref.file_key(entry.name))
        size = path.stat().st_size
        if size != entry.size:
            raise CheckpointError(f"{where}: size is {size} bytes, manifest says {entry.size}")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise CheckpointError(
                f"{where}: sha256 mismatch (manifest {entry.sha256[:12]}…, file {digest[:12]}…)"
            )
        paths[entry.name] = path
    return paths


def _workdir(staging_dir: Path, ref: CheckpointRef) -> Path:
    return Path(staging_dir) / "downloads" / f"step-{max(ref.step, 0):08d}-{secrets.token_hex(4)}"


def verify(store: ObjectStore, ref: CheckpointRef, staging_dir: Path) -> Manifest:
    """Re-hash every file of ``ref`` and check the trainer state and meta schemas; a CheckpointError
    naming the first bad file."""
    workdir = _workdir(staging_dir, ref)
    try:
        manifest = read_manifest(store, ref)
        paths = _verified_files(store, ref, manifest, workdir)
        _read_states(store, ref, manifest, paths)
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read_json(path: Path, where: str) -> Any:
    with open(path, "rb") as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    return parse_json(data, where, allow_nan=True)


def _read_states(
    store: ObjectStore, ref: CheckpointRef, manifest: Manifest, paths: dict[str, Path]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trainer state and meta of verified files, checked against their schemas ({} when absent)."""
    state: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    if TRAINER_STATE in paths:
        where = store.describe(ref.file_key(TRAINER_STATE))
        state = check_trainer_state(_read_json(paths[TRAINER_STATE], where), where, manifest.step)
    if META in paths:
        where = store.describe(ref.file_key(META))
        meta = check_meta(_read_json(paths[META], where), where, manifest.step)
    return state, meta


def load(store: ObjectStore, ref: CheckpointRef, staging_dir: Path) -> LoadedCheckpoint:
    """Verify and read ``ref``: tensors per group, trainer state and meta."""
    workdir = _workdir(staging_dir, ref)
    try:
        manifest = read_manifest(store, ref)
        paths = _verified_files(store, ref, manifest, workdir)
        tensors = {
            name[: -len(TENSOR_SUFFIX)]: read_tensors(path, store.describe(ref.file_key(name)))
            for name, path in paths.items()
            if name.endswith(TENSOR_SUFFIX)
        }
        state, meta = _read_states(store, ref, manifest, paths)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("loaded %s (step %d, %d tensor group(s), sha256-verified)", ref.uri, manifest.step, len(tensors))
    return LoadedCheckpoint(ref, tensors, state, meta, manifest)


def read_json_file(store: ObjectStore, ref: CheckpointRef, name: str) -> dict[str, Any]:
    """One small JSON file of ``ref`` (meta or trainer state) without touching the tensors (not hashed):
    {} if absent; a CheckpointError naming the file if it is unreadable or breaks its schema."""
    key = ref.file_key(name)
    try:
        value = read_json(store, key, allow_nan=True)
    except NotFoundError:
        return {}
    except AccessDeniedError as exc:
        raise CheckpointError(exc.line()) from None
    where = store.describe(key)
    step = ref.step if ref.step >= 0 else None
    if name == TRAINER_STATE and step is not None:
        return check_trainer_state(value, where, step)
    if name == META and step is not None:
        return check_meta(value, where, step)
    return json_object(value, where)
