"""Reading foreign weight files — pickles only on explicit opt-in — and importing them.

Published pretrained weights of the Paddle toolkits are pickles, and unpickling runs code from the file.
So this is the one place that calls ``paddle.load``, and :func:`allow_pickle_file` is the one gate for
any file a loader (ours or a toolkit's) might unpickle: it refuses unless ``allow_pickle`` is set, and
every use is logged at WARNING with the file's name and sha256. What a file is comes from its content
(:mod:`app.checkpoint.sniff`), never its name: :func:`read_weights_file` reads safetensors pickle-free
whatever the file is called, and a pickle under any name goes through the gate. ``import_pdparams``
converts such a file into a committed checkpoint, after which loading never unpickles again.
For ``init.from``, :func:`read_init_file` adds the pin: a file whose sha256 differs from ``init.sha256`` is
refused, and a matching pin opts in to unpickling that exact file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint.layout import TENSOR_SUFFIX, CheckpointRef, json_bytes
from app.checkpoint.lineage import with_lineage
from app.checkpoint.sniff import sniff_file
from app.checkpoint.tensorio import read_tensors, sha256_file
from app.checkpoint.writer import PreparedSave, write_checkpoint
from app.errors import CheckpointError
from app.store.base import ObjectStore

__all__ = [
    "OPT_IN_HINT",
    "init_opt_in_hint",
    "IMPORT_HINT",
    "pickle_refused",
    "allow_pickle_file",
    "read_pdparams",
    "read_weights_file",
    "read_init_file",
    "import_pdparams",
]

log = logging.getLogger(__name__)

OPT_IN_HINT = (
    "if you trust the file, set init.allow_pickle: true (--set init.allow_pickle=true), or convert it "
    "once with `warmstart ckpt import SRC DEST --allow-pickle`"
)
#: How the opt-in reads for ``init.from``: besides ``allow_pickle``, pinning the exact file counts.
PIN_OPT_IN = "init.sha256 pins this file"


def init_opt_in_hint(digest: str) -> str:
    """The refusal hint for an ``init.from`` file: both opt-ins, the pin spelled with this file's digest."""
    return (
        "if you trust the file, set init.allow_pickle: true (--set init.allow_pickle=true) or pin this "
        f"exact file with init.sha256: {digest}, or convert it once with "
        "`warmstart ckpt import SRC DEST --allow-pickle` and set init.from: DEST"
    )


#: The hint of ``warmstart ckpt import``, whose opt-in is its own flag.
IMPORT_HINT = "if you trust the file, pass --allow-pickle"


def pickle_refused(source: str, why: str = "", hint: str = OPT_IN_HINT) -> CheckpointError:
    """The one refusal: which file, who would unpickle it, that it was not loaded, and how to opt in."""
    return CheckpointError(
        f"{source} is a pickle ({why or 'found by its content'}); loading it can run arbitrary code, "
        "so it is refused",
        hint=hint,
    )


def allow_pickle_file(
    path: Path,
    *,
    allow_pickle: bool,
    source: str | None = None,
    why: str = "",
    hint: str = OPT_IN_HINT,
    opt_in: str = "allow_pickle is set",
) -> str:
    """Gate a file some loader may unpickle: refuse without opt-in, else log its name and sha256.

    Returns the sha256. ``why`` says who unpickles it (e.g. "PaddleNLP's tokenizer"); ``opt_in`` says
    which opt-in let it through (the log line names it).
    """
    source = source or str(path)
    if not allow_pickle:
        raise pickle_refused(source, why, hint)
    digest = sha256_file(path)
    log.warning(
        "unpickling %s (sha256 %s)%s because %s; only do this with trusted files",
        source,
        digest,
        f" via {why}" if why else "",
        opt_in,
    )
    return digest


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


def read_pdparams(
    path: Path,
    *,
    allow_pickle: bool,
    source: str | None = None,
    hint: str = OPT_IN_HINT,
    opt_in: str = "allow_pickle is set",
) -> dict[str, np.ndarray]:
    """Unpickle a trusted Paddle pickle into name -> array. Refuses without ``allow_pickle``."""
    source = source or str(path)
    allow_pickle_file(path, allow_pickle=allow_pickle, source=source, hint=hint, opt_in=opt_in)
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


def read_weights_file(
    path: Path,
    *,
    allow_pickle: bool,
    source: str | None = None,
    hint: str = OPT_IN_HINT,
    opt_in: str = "allow_pickle is set",
) -> dict[str, np.ndarray]:
    """name -> array from a weights file, by content: safetensors pickle-free, a pickle only if allowed.

    The name only ever adds a refusal: a file called ``*.safetensors`` that holds a pickle is refused even
    with the opt-in (it claims to be pickle-free; it is not what the user meant to trust).
    """
    source = source or str(path)
    kind = sniff_file(path)
    if kind == "safetensors" or source.endswith(TENSOR_SUFFIX):
        return read_tensors(path, source)
    if kind in ("pickle", "zip"):
        return read_pdparams(path, allow_pickle=allow_pickle, source=source, hint=hint, opt_in=opt_in)
    raise CheckpointError(
        f"{source} is neither a safetensors file nor a Paddle pickle (.pdparams)",
        hint="give a .safetensors file, a checkpoint folder, or a trusted .pdparams with init.allow_pickle",
    )


def read_init_file(
    path: Path, *, allow_pickle: bool, expected_sha256: str | None, source: str, digest: str | None = None
) -> dict[str, np.ndarray]:
    """An ``init.from`` weights file: checked against ``init.sha256`` when pinned, and a pin that matches
    is the pickle opt-in too (the user named this exact file). ``digest``: the file's sha256 if known."""
    digest = digest or sha256_file(path)
    pinned = bool(expected_sha256)
    if pinned and digest != expected_sha256:
        raise CheckpointError(
            f"{source} has sha256 {digest}, but init.sha256 pins {expected_sha256}; nothing was loaded",
            hint="check init.sha256 and init.from",
        )
    opt_in = PIN_OPT_IN if pinned and not allow_pickle else "allow_pickle is set"
    return read_weights_file(
        path,
        allow_pickle=allow_pickle or pinned,
        source=source,
        hint=init_opt_in_hint(digest),
        opt_in=opt_in,
    )


def import_pdparams(
    path: Path,
    store: ObjectStore,
    step: int,
    staging_dir: Path,
    *,
    allow_pickle: bool,
    source: str | None = None,
    hint: str = OPT_IN_HINT,
) -> CheckpointRef:
    """Convert ``path`` (a pickle, or safetensors) into a committed checkpoint ``step-N`` (group ``model``)."""
    source = source or str(path)
    tensors = read_weights_file(path, allow_pickle=allow_pickle, source=source, hint=hint)
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
