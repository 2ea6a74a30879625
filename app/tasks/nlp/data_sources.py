"""Two more sources of examples (sequence and token classification): a Hugging Face ``datasets`` folder
written by ``save_to_disk``, and a data file read by one of PaddleNLP's own dataset readers.

- ``format: hf_disk``: ``train_file`` / ``eval_file`` are folders ``Dataset.save_to_disk`` wrote (for a
  ``DatasetDict``, its split sub-folder, e.g. ``data/reviews/train``), read with ``datasets.load_from_disk``
  (Arrow files; nothing is unpickled). A ``ClassLabel`` label column (or a sequence of them, NER tags)
  gives its names, not its numbers.
- ``format: paddlenlp``: the files are read by the reader of PaddleNLP's dataset ``paddlenlp_dataset``
  (``chnsenticorp``, ``lcqmc``, ``clue`` with ``paddlenlp_dataset_config: tnews``, ...), exactly as
  ``paddlenlp.datasets.load_dataset(name, data_files=..., splits=...)`` reads them: the files PaddleNLP's
  own download leaves in ``<PPNLP_HOME>/datasets`` or a user's files in that layout. The training file is
  read as split ``train``, the evaluation file as ``paddlenlp_eval_split`` (PaddleNLP's ``dev``). Label
  numbers become the reader's ``label_list`` names. Nothing is downloaded (``data_files`` is always given).

Rows then go through the same checks as CSV/JSONL rows (:func:`app.tasks.nlp.data.examples_of_rows`);
NER rows need a list of words and a list of tags of the same length (:func:`tag_examples_of_rows`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from app.errors import TaskError
from app.tasks.nlp.data import TagExample, TextExample, examples_of_rows

__all__ = [
    "is_hf_disk",
    "read_hf_disk",
    "read_hf_disk_tags",
    "read_paddlenlp",
    "read_paddlenlp_tags",
    "tag_examples_of_rows",
]

log = logging.getLogger(__name__)

#: What ``save_to_disk`` writes beside the Arrow files: a Dataset folder, or a DatasetDict's root.
_HF_DATASET = "state.json"
_HF_DICT = "dataset_dict.json"
#: A module name of ``paddlenlp.datasets`` (nothing else is imported).
_MODULE = re.compile(r"^[a-z][a-z0-9_]*$")


def is_hf_disk(path: Path) -> bool:
    return path.is_dir() and ((path / _HF_DATASET).is_file() or (path / _HF_DICT).is_file())


def _label_names(feature: Any) -> list[str] | None:
    """The names of a ``ClassLabel`` column, or of a sequence of them (NER tags)."""
    names = getattr(feature, "names", None)
    if names is None:
        names = getattr(getattr(feature, "feature", None), "names", None)
    return list(names) if names is not None else None


def _named(value: Any, names: list[str] | None) -> Any:
    """A label number (or list of them) as its name where ``names`` has it; anything else unchanged."""
    if not names:
        return value
    if isinstance(value, list):
        return [_named(v, names) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return value


def _hf_rows(path: Path, label_col: str) -> list[tuple[int, dict]]:
    from datasets import Dataset, load_from_disk

    if not path.is_dir():
        raise TaskError(f"data folder {str(path)!r} does not exist", hint="check task.options.*_file")
    if (path / _HF_DICT).is_file():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise TaskError(
            f"data folder {str(path)!r} is a DatasetDict (splits: {', '.join(splits)})",
            hint=f"point task.options.train_file / eval_file at one split, e.g. {path / (splits or ['train'])[0]}",
        )
    if not is_hf_disk(path):
        raise TaskError(
            f"data folder {str(path)!r} has no {_HF_DATASET}: not written by datasets' save_to_disk",
            hint="save it with Dataset.save_to_disk, or set task.options.format to the file's format",
        )
    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds for a bad folder
        raise TaskError(
            f"data folder {str(path)!r} is not a datasets save_to_disk folder: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(ds, Dataset):
        raise TaskError(f"data folder {str(path)!r}: expected a Dataset, got {type(ds).__name__}")
    names = _label_names(ds.features.get(label_col))
    return [(no, {**row, label_col: _named(row.get(label_col), names)}) for no, row in enumerate(ds, 1)]


def read_hf_disk(path: Path, text_col: str, pair_col: str | None, label_col: str) -> list[TextExample]:
    """Examples of a ``save_to_disk`` folder (messages name ``folder:row``, rows counted from 1)."""
    return examples_of_rows(path, _hf_rows(path, label_col), text_col, pair_col, label_col)


def read_hf_disk_tags(path: Path, tokens_col: str, tags_col: str) -> list[TagExample]:
    """NER sentences of a ``save_to_disk`` folder (a tokens and a tags column)."""
    return tag_examples_of_rows(path, _hf_rows(path, tags_col), tokens_col, tags_col)


def tag_examples_of_rows(
    path: Path, rows: list[tuple[int, dict]], tokens_col: str, tags_col: str
) -> list[TagExample]:
    """Check and convert rows holding a list of words and a list of tag names of the same length."""
    if not rows:
        raise TaskError(f"data {str(path)!r} holds no sentences", hint="is it the right file?")
    out = []
    for no, row in rows:
        missing = [c for c in (tokens_col, tags_col) if c not in row]
        if missing:
            raise TaskError(
                f"{path}:{no}: missing column {missing[0]!r} (found: {', '.join(map(str, row))})",
                hint="set task.options.tokens_column / tags_column",
            )
        tokens, tags = row[tokens_col], row[tags_col]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise TaskError(
                f"{path}:{no}: {tokens_col!r} and {tags_col!r} must be lists of the same length",
                hint="one tag per word",
            )
        if tokens:
            out.append(TagExample(tuple(map(str, tokens)), tuple(map(str, tags)), f"{path}:{no}"))
    if not out:
        raise TaskError(f"data {str(path)!r} holds no sentences", hint="is it the right file?")
    return out


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


def _paddlenlp_rows(
    path: Path, name: str, config: str | None, split: str, label_col: str
) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise TaskError(f"data file {str(path)!r} does not exist", hint="check task.options.*_file")
    ds = _reader_dataset(path, name, config, split)
    names = getattr(ds, "label_list", None)
    rows = [(no, {**dict(ex), label_col: _named(ex.get(label_col), names)}) for no, ex in enumerate(ds, 1)]
    log.info("%s: %d examples read by PaddleNLP's %s reader (split %s)", path, len(rows), name, split)
    return rows


def read_paddlenlp(
    path: Path, name: str, config: str | None, split: str, cols: tuple[str, str | None, str]
) -> list[TextExample]:
    """Examples of ``path`` as PaddleNLP's reader of dataset ``name`` yields them (labels as names)."""
    text_col, pair_col, label_col = cols
    rows = _paddlenlp_rows(path, name, config, split, label_col)
    return examples_of_rows(path, rows, text_col, pair_col, label_col)


def read_paddlenlp_tags(
    path: Path, name: str, config: str | None, split: str, tokens_col: str, tags_col: str
) -> list[TagExample]:
    """NER sentences of ``path`` as PaddleNLP's reader of dataset ``name`` yields them (tags as names)."""
    rows = _paddlenlp_rows(path, name, config, split, tags_col)
    return tag_examples_of_rows(path, rows, tokens_col, tags_col)
