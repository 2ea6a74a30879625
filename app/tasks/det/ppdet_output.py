"""Read what PaddleDetection's own ``Trainer`` saved: ``<name>.pdparams`` + ``.pdopt`` (+ ``.pdema``).

ppdet's ``save_model`` (``ppdet/utils/checkpoint.py``) writes, for ``save_dir/<name>``:

* ``.pdparams``: the model's ``state_dict``; with ``use_ema`` the *EMA* weights (bias-corrected by
  ``ModelEMA.apply()``) — ppdet exchanges the two files when EMA is on;
* ``.pdema`` (only with ``use_ema``): the trained model's own weights;
* ``.pdopt``: the optimizer's ``state_dict`` — accumulators keyed by Paddle's generated names
  (``conv2d_0.w_0_velocity_0``), ``LR_Scheduler`` (``last_epoch`` = optimizer steps taken) — plus
  ``last_epoch`` (completed epochs).

All three are pickles, so each goes through the one opt-in gate (:func:`allow_pickle_file`). Everything
is checked here before anything is built; a problem is a CheckpointError naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint.pdparams import IMPORT_HINT, allow_pickle_file, read_pdparams
from app.checkpoint.source import local_copy
from app.checkpoint.tensorio import sha256_file
from app.errors import CheckpointError

__all__ = ["PpdetFiles", "PpdetOutput", "find_files", "read_output", "split_accumulator"]

log = logging.getLogger(__name__)

SUFFIXES = (".pdparams", ".pdopt", ".pdema")


@dataclass
class PpdetFiles:
    """Local copies of one ppdet save, and the URIs they came from (for messages and lineage)."""

    pdparams: Path
    pdopt: Path
    pdema: Path | None
    sources: dict[str, str]


@dataclass
class PpdetOutput:
    params: dict[str, np.ndarray]  # .pdparams (the EMA weights when .pdema exists)
    ema_model: dict[str, np.ndarray] | None  # .pdema (the trained weights), when present
    accumulators: dict[str, np.ndarray]  # generated accumulator name -> value
    steps: int  # LR_Scheduler.last_epoch: optimizer steps ppdet took
    epochs: int  # last_epoch: epochs ppdet completed
    last_lr: float | None  # LR_Scheduler.last_lr: ppdet's LR for the next step
    sha256: dict[str, str]


def _prefix(src: str) -> str:
    """ppdet's ``_strip_postfix``: the save name without its suffix (``.../model_final``)."""
    for suffix in SUFFIXES:
        if src.endswith(suffix):
            return src[: -len(suffix)]
    return src


def _exists(uri: str, store_cfg: Any, staging: Path) -> Path | None:
    try:
        path, _ = local_copy(uri, store_cfg, staging)
    except CheckpointError:
        return None
    return path


def find_files(src: str, store_cfg: Any, staging: Path) -> PpdetFiles:
    """The files of the save ``src`` names (any of its three files, or the name without suffix)."""
    prefix = _prefix(src)
    found = {s: _exists(prefix + s, store_cfg, staging) for s in SUFFIXES}
    if found[".pdparams"] is None:
        raise CheckpointError(
            f"{prefix}.pdparams does not exist: a ppdet save needs the weights beside the optimizer state "
            f"({src})",
            hint="give the .pdparams of the save whose .pdopt you mean (e.g. output/<config>/model_final.pdparams)",
        )
    if found[".pdopt"] is None:
        raise CheckpointError(
            f"{prefix}.pdopt does not exist: --config imports a ppdet training run (weights, optimizer "
            "state and schedule position)",
            hint="to import the weights alone, run `warmstart ckpt import` without --config",
        )
    return PpdetFiles(
        found[".pdparams"], found[".pdopt"], found[".pdema"],  # type: ignore[arg-type]
        {s: prefix + s for s in SUFFIXES if found[s] is not None},
    )  # fmt: skip


def _load_tree(path: Path, source: str) -> Any:
    import paddle

    try:
        return paddle.load(str(path), return_numpy=True)
    except Exception as exc:  # noqa: BLE001  (paddle/pickle raise anything)
        raise CheckpointError(f"{source} cannot be read by paddle.load: {exc}") from None


def _int_field(tree: dict, key: str, source: str) -> int:
    value = tree.get(key)
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise CheckpointError(
            f"{source}: {key} is {value!r}, expected a count >= 0 (is this a .pdopt saved by ppdet's Trainer?)"
        )
    return int(value)


def _read_pdopt(path: Path, source: str) -> tuple[dict[str, np.ndarray], int, int, float | None]:
    tree = _load_tree(path, source)
    sched = tree.get("LR_Scheduler") if isinstance(tree, dict) else None
    if not isinstance(sched, dict):
        raise CheckpointError(
            f"{source} holds no LR_Scheduler state: not an optimizer state saved by ppdet's Trainer",
            hint="ppdet writes <name>.pdopt next to <name>.pdparams in save_dir/<config name>/",
        )
    if "master_weights" in tree:
        raise CheckpointError(
            f"{source} holds AMP O2 master weights, which are not imported",
            hint="continue that run with ppdet, or import the weights alone (without --config)",
        )
    steps = _int_field(sched, "last_epoch", f"{source} LR_Scheduler")
    epochs = _int_field(tree, "last_epoch", source)
    accumulators: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if key in ("LR_Scheduler", "last_epoch"):
            continue
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
            shown = f"{value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
            raise CheckpointError(f"{source}: entry {key!r} is a {shown}, not a float tensor")
        accumulators[str(key)] = np.array(value, copy=True)
    return accumulators, steps, epochs, _last_lr(sched, source)


def _last_lr(sched: dict, source: str) -> float | None:
    value = sched.get("last_lr")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not np.isfinite(value):
        raise CheckpointError(f"{source}: LR_Scheduler.last_lr is {value!r}, expected a finite number")
    return float(value)


def read_output(files: PpdetFiles, *, allow_pickle: bool) -> PpdetOutput:
    """Unpickle the save (each file gated and logged with its sha256) and check its structure."""
    digests: dict[str, str] = {}
    src = files.sources
    params = read_pdparams(
        files.pdparams, allow_pickle=allow_pickle, source=src[".pdparams"], hint=IMPORT_HINT
    )
    digests[src[".pdparams"]] = sha256_file(files.pdparams)
    digests[src[".pdopt"]] = allow_pickle_file(
        files.pdopt, allow_pickle=allow_pickle, source=src[".pdopt"], hint=IMPORT_HINT
    )
    accumulators, steps, epochs, last_lr = _read_pdopt(files.pdopt, src[".pdopt"])
    ema_model = None
    if files.pdema is not None:
        ema_model = read_pdparams(
            files.pdema, allow_pickle=allow_pickle, source=src[".pdema"], hint=IMPORT_HINT
        )
        digests[src[".pdema"]] = sha256_file(files.pdema)
    return PpdetOutput(params, ema_model, accumulators, steps, epochs, last_lr, digests)


def split_accumulator(key: str, param_names: list[str]) -> tuple[str, str] | None:
    """``conv2d_0.w_0_velocity_0`` -> (``conv2d_0.w_0``, ``velocity``): Paddle names an accumulator
    ``unique_name(<param name>_<kind>)``; the longest parameter name that prefixes it wins."""
    stem, sep, counter = key.rpartition("_")
    if not sep or not counter.isdigit():
        return None
    best = max((p for p in param_names if stem.startswith(p + "_")), key=len, default=None)
    if best is None:
        return None
    return best, stem[len(best) + 1 :]
