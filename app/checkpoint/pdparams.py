"""Reading Paddle's pickled ``.pdparams`` files — only on explicit opt-in — and importing them.

Published pretrained weights of the Paddle toolkits are pickles, and unpickling runs code from the file.
So this is the one place that calls ``paddle.load``, it refuses unless ``allow_pickle`` is set, and every
use is logged at WARNING with the file's sha256. ``import_pdparams`` converts such a file into a
committed checkpoint, after which loading never unpickles again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint.layout import CheckpointRef, json_bytes
from app.checkpoint.lineage import with_lineage
from app.checkpoint.tensorio import sha256_file
from app.checkpoint.writer import PreparedSave, write_checkpoint
from app.errors import CheckpointError
from app.store.base import ObjectStore

__all__ = ["PICKLE_SUFFIXES", "is_pickle_name", "read_pdparams", "import_pdparams"]

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pdparams", ".pdopt", ".pdmodel.pkl")


def is_pickle_name(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES)


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray], skipped: list[str]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, skipped)
        return
    value = tree.numpy() if hasattr(tree, "numpy") and not isinstance(tree, np.ndarray) else tree
    if isinstance(value, np.ndarray):
        out[prefix] = np.array(value, copy=True)
    else:
        skipped.append(prefix)


def read_pdparams(path: Path, *, allow_pickle: bool, source: str | None = None) -> dict[str, np.ndarray]:
    """Unpickle a trusted ``.pdparams`` file into name -> array. Refuses without ``allow_pickle``."""
    source = source or str(path)
    if not allow_pickle:
        raise CheckpointError(
            f"{source} is a pickle (.pdparams); loading it can run arbitrary code, so it is refused",
            hint="if you trust the file, pass --allow-pickle (init.allow_pickle: true) or convert it once "
            "with `warmstart ckpt import SRC DEST --allow-pickle`",
        )
    digest = sha256_file(path)
    log.warning(
        "unpickling %s (sha256 %s) because allow_pickle is set; only do this with trusted files",
        source,
        digest,
    )
    import paddle  # deferred: only this opt-in path needs paddle to read files

    try:
        tree = paddle.load(str(path), return_numpy=True)
    except Exception as exc:  # noqa: BLE001  (paddle/pickle raise anything)
        raise CheckpointError(f"{source} cannot be read by paddle.load: {exc}") from None
    tensors: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    _flatten(tree, "", tensors, skipped)
    if skipped:
        log.warning("%s: ignored %d non-tensor entries: %s", source, len(skipped), ", ".join(skipped[:10]))
    if not tensors:
        raise CheckpointError(f"{source} holds no tensors")
    return tensors


def import_pdparams(
    path: Path,
    store: ObjectStore,
    step: int,
    staging_dir: Path,
    *,
    allow_pickle: bool,
    source: str | None = None,
) -> CheckpointRef:
    """Convert ``path`` into a committed checkpoint ``step-N`` (group ``model``) under ``store``."""
    source = source or str(path)
    tensors = read_pdparams(path, allow_pickle=allow_pickle, source=source)
    meta = with_lineage(
        {"source": source, "source_sha256": sha256_file(path), "notes": f"imported from {source}"}, step
    )
    prepared = PreparedSave(
        step=step,
        tensors={"model": tensors},
        state_json=json_bytes({"step": step, "imported_from": source}, "trainer state"),
        meta_json=json_bytes(meta, "meta"),
        metrics={},
    )
    return write_checkpoint(store, prepared, staging_dir)
