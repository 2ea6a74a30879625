"""Hand PaddleNLP a model folder it cannot unpickle anything from: checked copies of ``model_dir``.

PaddleNLP's ``from_pretrained`` reads ``model_state.pdparams`` with ``paddle.load`` (a pickle), and a
tokenizer may ``pickle.load`` one of its resource files (ErnieTiny's ``dict.wordseg.pickle``). So
PaddleNLP never sees the user's folder, only a copy built here:

- the weights PaddleNLP would pick (``model.safetensors`` [+ index and shards], else
  ``model_state.pdparams`` [+ index and shards]) become safetensors: safetensors content is copied as is,
  a pickle (found by content, whatever its name) is read by :func:`read_weights_file` only with
  ``init.allow_pickle`` (logged with its sha256) and written as ``model.safetensors``;
- every other top-level file is copied after a content check: one a loader could unpickle is refused
  unless ``init.allow_pickle`` is set (then logged with its name and sha256);
- other weight files (``pytorch_model.bin``, variants), the Trainer's state files (``training_args.bin``,
  ``optimizer.pdopt``, ...) and sub-folders are left out: nothing reads them.

The model is then loaded with ``use_safetensors=True``, so PaddleNLP never falls back to a pickle.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from app.checkpoint.pdparams import allow_pickle_file, read_weights_file
from app.checkpoint.sniff import may_unpickle, sniff_file
from app.checkpoint.tensorio import write_tensors
from app.errors import CheckpointError, TaskError

__all__ = ["SAFE_WEIGHTS", "checked_copy", "stage_model_dir"]

log = logging.getLogger(__name__)

SAFE_WEIGHTS = "model.safetensors"
#: The weight files PaddleNLP picks from a folder, in its order of preference.
_CHOICES = (
    SAFE_WEIGHTS,
    f"{SAFE_WEIGHTS}.index.json",
    "model_state.pdparams",
    "model_state.pdparams.index.json",
)
#: Names PaddleNLP treats as weights (shards and variants included), and what its Trainer saves beside
#: them (arguments, optimizer, scheduler, scaler and RNG state): never read by from_pretrained, not copied.
_LEFT_OUT = re.compile(
    r"^((model|model_state|pytorch_model)([-.].*)?\.(safetensors|pdparams|bin)(\.index\.json)?"
    r"|training_args\.bin|(scheduler|scaler)\.pdparams|rng_state.*|.*\.(pdopt|pth|pt))$"
)
_WHY = "PaddleNLP may unpickle the files of a model_dir"


def _shards(folder: Path, index_name: str, source: str) -> list[Path]:
    try:
        weight_map = json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TaskError(f"model_dir {source!r}: {index_name} is not a weight index: {exc}") from None
    for name in names:
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
            raise TaskError(f"model_dir {source!r}: {index_name} names a shard outside the folder: {name!r}")
        if not (folder / name).is_file():
            raise TaskError(f"model_dir {source!r}: shard {name} (listed in {index_name}) is missing")
    return [folder / name for name in names]


def _weight_files(folder: Path, source: str) -> list[Path]:
    for name in _CHOICES:
        if (folder / name).is_file():
            return _shards(folder, name, source) if name.endswith(".index.json") else [folder / name]
    raise TaskError(f"model_dir {source!r} holds no {' or '.join(_CHOICES[::2])}")


def _stage_weights(files: list[Path], dest: Path, source: str, allow_pickle: bool) -> list[str]:
    """Write the weights into ``dest`` as safetensors; returns the source names used."""
    kinds = {p: sniff_file(p) for p in files}
    if all(kind == "safetensors" for kind in kinds.values()) and len(files) == 1:
        shutil.copyfile(files[0], dest / SAFE_WEIGHTS)
        return [files[0].name]
    tensors: dict[str, np.ndarray] = {}
    for path in files:
        tensors.update(read_weights_file(path, allow_pickle=allow_pickle, source=f"{source}/{path.name}"))
    write_tensors(tensors, dest / SAFE_WEIGHTS, f"{source} weights")
    return [p.name for p in files]


def checked_copy(src: Path, dest: Path, source: str, allow_pickle: bool) -> Path:
    """Build the checked copy of the folder ``src`` in ``dest`` (replaced); see the module docstring."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    weights = _stage_weights(_weight_files(src, source), dest, source, allow_pickle)
    left_out = []
    for path in sorted(src.iterdir()):
        if path.is_dir() or _LEFT_OUT.match(path.name):
            left_out.append(path.name)
            continue
        if may_unpickle(path):
            allow_pickle_file(path, allow_pickle=allow_pickle, source=f"{source}/{path.name}", why=_WHY)
        shutil.copyfile(path, dest / path.name)
    extra = sorted(set(left_out) - set(weights))
    log.info(
        "model_dir %s: weights from %s%s",
        source,
        ", ".join(weights),
        f"; not handed to PaddleNLP: {', '.join(extra)}" if extra else "",
    )
    return dest


def stage_model_dir(src: Path, source: str, allow_pickle: bool) -> Path:
    """A checked copy of ``src`` in a temporary folder removed when the process exits."""
    dest = Path(tempfile.mkdtemp(prefix="warmstart-model_dir-"))
    atexit.register(shutil.rmtree, dest, True)
    try:
        return checked_copy(src, dest / "model", source, allow_pickle)
    except CheckpointError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
