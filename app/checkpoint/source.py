"""Open whatever ``init.from`` names and return its tensors: a checkpoint root, a step folder, a tag, or
a weights file.

Accepted forms: ``ROOT`` (its latest verified checkpoint), ``ROOT#TAG`` (a promoted version, its manifest
hash checked), a step folder (any folder holding a ``manifest.json``, e.g. a copy made with
``aws s3 cp --recursive``), or a weights file: safetensors, or a Paddle pickle (only with ``allow_pickle``).
A file is told from a folder by what exists, and its kind by its content, never by its name: a pickle
called ``model.safetensors`` or ``weights.bin`` is refused like a ``.pdparams``. Any of them may be a local
path, ``file://``, ``s3://`` or ``oss://`` URI; a weights file may also be an ``http(s)://`` URL, downloaded
once into the cache (:mod:`app.checkpoint.download`).

For ``init.from`` (``for_init``), ``init.sha256`` pins a weights file: another digest stops the run, and
the matching one is the pickle opt-in too. The file's sha256 is returned in the loaded ``meta``
(``source_sha256``) for the lineage.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

from app.checkpoint import catalog, reader
from app.checkpoint.download import check_http_url, fetch, is_http
from app.checkpoint.layout import MANIFEST, TENSOR_SUFFIX, CheckpointRef, Manifest, sha256_bytes
from app.checkpoint.pdparams import read_init_file, read_weights_file
from app.checkpoint.reader import LoadedCheckpoint
from app.checkpoint.tags import resolve_tag
from app.checkpoint.tensorio import sha256_file
from app.errors import AppError, CheckpointError, ConfigError
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
    """A local path for the file ``uri`` (downloaded when remote) and the temp folder to remove.

    An http(s) URL comes from the download cache, which is never removed.
    """
    if is_http(uri):
        return fetch(uri, store_cfg).path, None
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


def _read(
    uri: str, path: Path, allow_pickle: bool, sha256: str | None, for_init: bool, digest: str | None
) -> tuple[dict, str]:
    """The tensors and sha256 of a local copy of ``uri`` (``digest``: its sha256 if already known)."""
    digest = digest or sha256_file(path)
    if not for_init:
        return read_weights_file(path, allow_pickle=allow_pickle, source=uri), digest
    tensors = read_init_file(
        path, allow_pickle=allow_pickle, expected_sha256=sha256, source=uri, digest=digest
    )
    return tensors, digest


def _load_file(  # noqa: PLR0913
    uri: str,
    store_cfg,  # noqa: ANN001
    staging_dir: Path,
    allow_pickle: bool,
    sha256: str | None,
    for_init: bool,
) -> LoadedCheckpoint:
    digest = None
    if is_http(uri):  # the cached copy, checked against the pin before it is used (or moved aside)
        fetched = fetch(uri, store_cfg, expected_sha256=sha256)
        path, tmp, digest = fetched.path, None, fetched.sha256
    else:
        path, tmp = local_copy(uri, store_cfg, staging_dir)
    try:
        tensors, digest = _read(uri, path, allow_pickle, sha256, for_init, digest)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    ref = CheckpointRef(-1, uri, "", "")
    return LoadedCheckpoint(ref, {"model": tensors}, {}, {"source": uri, "source_sha256": digest})


def open_source(  # noqa: PLR0913
    uri: str,
    store_cfg,  # noqa: ANN001
    *,
    allow_pickle: bool,
    staging_dir: Path,
    sha256: str | None = None,
    for_init: bool = False,
) -> LoadedCheckpoint:
    """Load the weights ``uri`` names (see the module docstring); verified, pickle-free unless opted in.

    ``for_init``: ``uri`` is ``init.from``, pinned by ``sha256`` (``init.sha256``) when given.
    """
    base, tag = split_tag(uri)
    if is_http(base):
        check_http_url("init.from" if for_init else "source", uri)
        return _load_file(base, store_cfg, staging_dir, allow_pickle, sha256, for_init)
    if _names_file(base, store_cfg):
        if tag:
            raise CheckpointError(f"{uri}: a #tag applies to a checkpoint root, not to a file")
        return _load_file(base, store_cfg, staging_dir, allow_pickle, sha256, for_init)
    if sha256:
        raise ConfigError(
            f"init.sha256 pins a weights file, but init.from {uri} is a checkpoint root or step folder",
            hint="remove init.sha256 (a checkpoint is verified by its manifest; pin a version with #tag)",
        )
    return _load_root(open_store(base, store_cfg), tag, staging_dir)
