"""Two more sources of sequence-classification examples: a Hugging Face ``datasets`` folder written by
``save_to_disk``, and a data file read by one of PaddleNLP's own dataset readers.

- ``format: hf_disk``: ``train_file`` / ``eval_file`` are folders ``Dataset.save_to_disk`` wrote (for a
  ``DatasetDict``, its split sub-folder, e.g. ``data/reviews/train``), read with ``datasets.load_from_disk``
  (Arrow files; nothing is unpickled). A ``ClassLabel`` label column gives its names, not its numbers.
- ``format: paddlenlp``: the files are read by the reader of PaddleNLP's dataset ``paddlenlp_dataset``
  (``chnsenticorp``, ``lcqmc``, ``clue`` with ``paddlenlp_dataset_config: tnews``, ...), exactly as
  ``paddlenlp.datasets.load_dataset(name, data_files=..., splits=...)`` reads them: the files PaddleNLP's
  own download leaves in ``<PPNLP_HOME>/datasets`` or a user's files in that layout. The training file is
  read as split ``train``, the evaluation file as ``paddlenlp_eval_split`` (PaddleNLP's ``dev``). Label
  numbers become the reader's ``label_list`` names. Nothing is downloaded (``data_files`` is always given).

Rows then go through the same checks as CSV/JSONL rows (:func:`app.tasks.nlp.data.examples_of_rows`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from app.errors import TaskError
from app.tasks.nlp.data import TextExample, examples_of_rows

__all__ = ["read_hf_disk", "read_paddlenlp", "is_hf_disk"]

log = logging.getLogger(__name__)

#: What ``save_to_disk`` writes beside the Arrow files: a Dataset folder, or a DatasetDict's root.
_HF_DATASET = "state.json"
_HF_DICT = "dataset_dict.json"
#: A module name of ``paddlenlp.datasets`` (nothing else is imported).
_MODULE = re.compile(r"^[a-z][a-z0-9_]*$")


def is_hf_disk(path: Path) -> bool:
    return path.is_dir() and ((path / _HF_DATASET).is_file() or (path / _HF_DICT).is_file())


def _hf_rows(path: Path, label_col: str) -> list[tuple[int, dict]]:
    from datasets import Dataset, load_from_disk

    if (path / _HF_DICT).is_file():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise TaskError(
            f"data folder {str(path)!r} is a DatasetDict (splits: {', '.join(splits)})",
            hint=f"point task.options.train_file / eval_file at one split, e.g. {path / (splits or ['train'])[0]}",
        )
    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for a bad folder
        raise TaskError(
            f"data folder {str(path)!r} is not a datasets save_to_disk folder: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(ds, Dataset):
        raise TaskError(f"data folder {str(path)!r}: expected a Dataset, got {type(ds).__name__}")
    names = getattr(ds.features.get(label_col), "names", None)  # a ClassLabel column
    rows = []
    for no, row in enumerate(ds, 1):
        if names is not None and isinstance(row.get(label_col), int) and 0 <= row[label_col] < len(names):
            row = {**row, label_col: names[row[label_col]]}
        rows.append((no, row))
    return rows


def read_hf_disk(path: Path, text_col: str, pair_col: str | None, label_col: str) -> list[TextExample]:
    """Examples of a ``save_to_disk`` folder (messages name ``folder:row``, rows counted from 1)."""
    if not path.is_dir():
        raise TaskError(f"data folder {str(path)!r} does not exist", hint="check task.options.*_file")
    if not is_hf_disk(path):
        raise TaskError(
            f"data folder {str(path)!r} has no {_HF_DATASET}: not written by datasets' save_to_disk",
            hint="save it with Dataset.save_to_disk, or set task.options.format to csv, tsv or jsonl",
        )
    return examples_of_rows(path, _hf_rows(path, label_col), text_col, pair_col, label_col)


def _reader(name: str, config: str | None) -> Any:
    """PaddleNLP's reader (``DatasetBuilder``) of dataset ``name``, never the Hugging Face fallback that
    ``load_dataset`` tries for unknown names (a download)."""
    from paddlenlp.datasets.dataset import import_main_class

    unknown = TaskError(
        f"task.options.paddlenlp_dataset: {name!r} is not a PaddleNLP dataset",
        hint="name a module of paddlenlp.datasets (chnsenticorp, lcqmc, clue, ...)",
    )
    if not _MODULE.match(name):
        raise unknown
    try:
        builder = import_main_class(name)
    except ModuleNotFoundError:
        raise unknown from None
    if builder is None:
        raise unknown
    configs = getattr(builder, "BUILDER_CONFIGS", None)
    if configs and config not in configs:
        raise TaskError(
            f"task.options.paddlenlp_dataset_config: {config!r} is not one of {name}'s: {', '.join(configs)}"
        )
    return builder(lazy=False, name=config)


def _reader_dataset(path: Path, name: str, config: str | None, split: str) -> Any:
    reader = _reader(name, config)
    try:  # what paddlenlp.datasets.load_dataset(name, data_files=[path], splits=[split]) does
        return reader.read_datasets(data_files=[str(path)], splits=[split])
    except (ValueError, AssertionError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise TaskError(
            f"data file {str(path)!r}: PaddleNLP's {name} reader (split {split!r}) failed: "
            f"{type(exc).__name__}: {exc}",
            hint="is it that dataset's file? set task.options.paddlenlp_eval_split for the evaluation file",
        ) from None


def read_paddlenlp(
    path: Path, name: str, config: str | None, split: str, cols: tuple[str, str | None, str]
) -> list[TextExample]:
    """Examples of ``path`` as PaddleNLP's reader of dataset ``name`` yields them (labels as names)."""
    if not path.is_file():
        raise TaskError(f"data file {str(path)!r} does not exist", hint="check task.options.*_file")
    ds = _reader_dataset(path, name, config, split)
    label_list = getattr(ds, "label_list", None)
    text_col, pair_col, label_col = cols
    rows = []
    for no, example in enumerate(ds, 1):
        row = dict(example)
        label = row.get(label_col)
        if label_list and isinstance(label, int) and 0 <= label < len(label_list):
            row[label_col] = label_list[label]
        rows.append((no, row))
    log.info("%s: %d examples read by PaddleNLP's %s reader (split %s)", path, len(rows), name, split)
    return examples_of_rows(path, rows, text_col, pair_col, label_col)
