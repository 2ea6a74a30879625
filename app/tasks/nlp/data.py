"""Read NLP training data into plain examples: CSV/TSV/JSONL for sequence classification, CoNLL for NER.

(Hugging Face ``save_to_disk`` folders and PaddleNLP dataset files: :mod:`app.tasks.nlp.data_sources`.)

Every error is a :class:`TaskError` naming the file (and line where there is one). Label sets come from
``task.options.labels`` or, when unset, the sorted set of labels in the training file.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from app.errors import TaskError

__all__ = [
    "TextExample",
    "TagExample",
    "read_text_examples",
    "examples_of_rows",
    "read_conll",
    "label_set",
    "check_labels",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextExample:
    text: str
    pair: str | None
    label: str
    where: str  # "file:line" for messages


@dataclass(frozen=True)
class TagExample:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    where: str  # "file:line" of the sentence's first word


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise TaskError(f"data file {str(path)!r} does not exist", hint="check task.options.*_file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TaskError(f"data file {str(path)!r} is not UTF-8 text (byte {exc.start})") from None


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    by_suffix = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
    found = by_suffix.get(path.suffix.lower())
    if found is None:
        raise TaskError(
            f"data file {str(path)!r}: cannot tell the format from the suffix {path.suffix!r}",
            hint="set task.options.format to csv, tsv or jsonl",
        )
    return found


def _rows(path: Path, fmt: str, lines: list[str]) -> list[tuple[int, dict]]:
    """(line number, row) pairs; CSV/TSV rows are keyed by the header line."""
    if fmt == "jsonl":
        rows = []
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{no}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise TaskError(f"{path}:{no}: expected a JSON object, got {type(row).__name__}")
            rows.append((no, row))
        return rows
    reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",")
    header = next(reader, None)
    if not header:
        return []
    out = []
    for row in reader:
        no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise TaskError(f"{path}:{no}: {len(row)} fields, the header has {len(header)}")
        out.append((no, dict(zip(header, row, strict=False))))
    return out


def read_text_examples(
    path: Path, fmt: str, text_col: str, pair_col: str | None, label_col: str
) -> list[TextExample]:
    """Examples of a CSV (header line), TSV (header line) or JSONL file."""
    lines = _read_lines(path)
    rows = _rows(path, _format_of(path, fmt), lines)
    return examples_of_rows(path, rows, text_col, pair_col, label_col)


def examples_of_rows(
    path: Path | str, rows: list[tuple[int, dict]], text_col: str, pair_col: str | None, label_col: str
) -> list[TextExample]:
    """Check and convert (line or row number, row) pairs; messages name ``path:number``."""
    if not rows:
        raise TaskError(f"data file {str(path)!r} holds no examples", hint="is it the right file?")
    wanted = [c for c in (text_col, pair_col, label_col) if c]
    out = []
    for no, row in rows:
        missing = [c for c in wanted if c not in row]
        if missing:
            raise TaskError(
                f"{path}:{no}: missing column {missing[0]!r} (found: {', '.join(map(str, row))})",
                hint="set task.options.text_column / text_pair_column / label_column",
            )
        text, label = str(row[text_col]), str(row[label_col]).strip()
        if not text.strip():
            raise TaskError(f"{path}:{no}: empty text in column {text_col!r}")
        if not label:
            raise TaskError(f"{path}:{no}: empty label in column {label_col!r}")
        pair = str(row[pair_col]) if pair_col else None
        out.append(TextExample(text, pair, label, f"{path}:{no}"))
    return out


def read_conll(path: Path) -> list[TagExample]:
    """Sentences of a CoNLL file: ``token [other columns] tag`` per line, a blank line between sentences.

    ``-DOCSTART-`` lines are skipped.
    """
    lines = _read_lines(path)
    out: list[TagExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for no, line in enumerate([*lines, ""], 1):
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            continue
        if not fields:
            if tokens:
                out.append(TagExample(tuple(tokens), tuple(tags), f"{path}:{start}"))
            tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise TaskError(f"{path}:{no}: expected 'token tag' (whitespace-separated), got {line.strip()!r}")
        if not tokens:
            start = no
        tokens.append(fields[0])
        tags.append(fields[-1])
    if not out:
        raise TaskError(f"data file {str(path)!r} holds no sentences", hint="is it a CoNLL file?")
    return out


def label_set(configured: list[str] | None, found: list[str], source: str) -> list[str]:
    """The head's label names: as configured, else the sorted distinct labels of the training file."""
    if configured:
        return list(configured)
    labels = sorted(set(found))
    log.info("labels inferred from %s (sorted): %s", source, ", ".join(labels))
    return labels


def check_labels(found: list[tuple[str, str]], labels: list[str]) -> None:
    """Raise on the first (label, where) pair whose label is not in ``labels``."""
    known = set(labels)
    for label, where in found:
        if label not in known:
            raise TaskError(
                f"{where}: unknown label {label!r} (labels: {', '.join(labels)})",
                hint="add it to task.options.labels or fix the data",
            )
