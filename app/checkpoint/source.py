"""Open whatever ``init.from`` names and return its tensors: a checkpoint root, a step folder, a tag, or
a weights file.

Accepted forms: ``ROOT`` (its latest verified checkpoint), ``ROOT#TAG`` (a promoted version, its manifest
hash checked), a step folder (any folder holding a ``manifest.json``, e.g. a copy made with
``aws s3 cp --recursive``), or a weights file: safetensors, or a Paddle pickle (only with ``allow_pickle``).
A file is told from a folder by what exists, and its kind by its content, never by its name: a pickle
called ``model.safetensors`` or ``weights.bin`` is refused like a ``.pdparams``. Any of them may be a local
path, ``file://``, ``s3://`` or ``oss://`` URI.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

from app.checkpoint import catalog, reader
from app.checkpoint.layout import MANIFEST, TENSOR_SUFFIX, CheckpointRef, Manifest, sha256_bytes
from app.checkpoint.pdparams import read_weights_file
from app.checkpoint.reader import LoadedCheckpoint
from app.checkpoint.tags import resolve_tag
from app.errors import AppError, CheckpointError
from app.store import open_store
from app.store.base import NotFoundError, ObjectStore

__all__ = ["open_source", "split_tag", "resolve_ref", "local_copy"]

log = logging.getLogger(__name__)

#: Suffixes that make a missing ``init.from`` read as a missing file (not a checkpoint root); they never
#: decide how a file is read.
FILE_SUFFIXES = (TENSOR_SUFFIX, ".pdparams", ".pdopt", ".pkl", ".pickle", ".bin", ".pt", ".pth")


def split_tag(uri: str) -> tuple[str, str | None]:
    """``'s3://b/run#v1'`` -> ``('s3://b/run', 'v1')``; no ``#`` -> ``(uri, None)``."""
    base, sep, tag = uri.partition("#")
    return base, (tag if sep else None)


def _split_file(uri: str) -> tuple[str, str]:
    parent, sep, name = uri.rstrip("/").rpartition("/")
    return (parent if sep else "."), name


def _folder_ref(store: ObjectStore) -> CheckpointRef:
    data = store.get_bytes(MANIFEST)
    manifest = Manifest.parse(data, store.describe(MANIFEST))
    return CheckpointRef(manifest.step, store.uri, sha256_bytes(data), "")


def resolve_ref(store: ObjectStore, tag: str | None) -> CheckpointRef | None:
    """The checkpoint a root/step-folder store names: the tag's, the folder's own, or the latest."""
    if tag:
        return resolve_tag(store, tag)
    if store.exists(MANIFEST):
        return _folder_ref(store)
    return catalog.latest(store)


def _load_root(store: ObjectStore, tag: str | None, staging_dir: Path) -> LoadedCheckpoint:
    if tag or store.exists(MANIFEST):
        ref = resolve_ref(store, tag)
        assert ref is not None
        return reader.load(store, ref, staging_dir)
    statuses = catalog.scan(store)
    while (ref := catalog.latest(store, statuses)) is not None:
        try:
            return reader.load(store, ref, staging_dir)
        except CheckpointError as exc:
            log.warning(
                "skipping checkpoint step %d: %s; falling back to the previous one", ref.step, exc.line()
            )
            statuses = [s for s in statuses if s.step < ref.step]
    raise CheckpointError(
        f"no committed checkpoint under {store.uri}", hint="check the URI (and its step-* folders)"
    )


def local_copy(uri: str, store_cfg, staging_dir: Path) -> tuple[Path, Path | None]:  # noqa: ANN001
    """A local path for the file ``uri`` (downloaded when remote) and the temp folder to remove."""
    parent, name = _split_file(uri)
    store = open_store(parent, store_cfg)
    if store.is_local:
        path = store.local_path(name)
        if not path.is_file():
            raise CheckpointError(f"{uri} does not exist")
        return path, None
    tmp = Path(staging_dir) / "downloads" / f"src-{secrets.token_hex(4)}"
    try:
        store.download_file(name, tmp / name)
    except NotFoundError:
        raise CheckpointError(f"{uri} does not exist") from None
    return tmp / name, tmp


def _names_file(uri: str, store_cfg) -> bool:  # noqa: ANN001
    """True when ``uri`` is one file (object), or is missing but named like a weights file."""
    parent, name = _split_file(uri)
    if not name or name in (".", ".."):
        return False
    try:
        found = open_store(parent, store_cfg).exists(name)
    except (AppError, ValueError):  # no such bucket/folder, a name that is no key: not a file here
        found = False
    return found or name.endswith(FILE_SUFFIXES)


def _load_file(uri: str, store_cfg, staging_dir: Path, allow_pickle: bool) -> LoadedCheckpoint:  # noqa: ANN001
    path, tmp = local_copy(uri, store_cfg, staging_dir)
    try:
        tensors = read_weights_file(path, allow_pickle=allow_pickle, source=uri)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    ref = CheckpointRef(-1, uri, "", "")
    return LoadedCheckpoint(ref, {"model": tensors}, {}, {"source": uri})


def open_source(uri: str, store_cfg, *, allow_pickle: bool, staging_dir: Path) -> LoadedCheckpoint:  # noqa: ANN001
    """Load the weights ``uri`` names (see the module docstring); verified, pickle-free unless opted in."""
    base, tag = split_tag(uri)
    if _names_file(base, store_cfg):
        if tag:
            raise CheckpointError(f"{uri}: a #tag applies to a checkpoint root, not to a file")
        return _load_file(base, store_cfg, staging_dir, allow_pickle)
    return _load_root(open_store(base, store_cfg), tag, staging_dir)
