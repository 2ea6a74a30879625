"""Typed ``task.options`` of the two NLP task kinds (``nlp_seq_cls``, ``nlp_token_cls``).

Paths (``model_dir``, ``train_file``, ``eval_file``) are only checked when the task is built, so a
shipped config validates on a machine that lacks the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.config.typed import limits, output_folder
from app.errors import ConfigError
from app.store.config import StoreConfig

__all__ = ["NlpOptions", "SeqClsOptions", "TokenClsOptions", "is_uri"]

SEQ_FORMATS = ("auto", "csv", "tsv", "jsonl", "hf_disk", "paddlenlp")


def is_uri(path: str) -> bool:
    """True for an object-store URI (``s3://``, ``oss://``); ``file://`` and plain paths are local."""
    return "://" in path and not path.startswith("file://")


@dataclass
class NlpOptions:
    """Options shared by both NLP kinds."""

    #: PaddleNLP pretrained folder (config.json + weights + tokenizer files), an s3:// / oss:// URI of one
    #: (downloaded into ``cache_dir`` first), or a PaddleNLP model name (``ernie-3.0-medium-zh``) found in
    #: PaddleNLP's cache ``<PPNLP_HOME>/models/<name>`` (fetched there by PaddleNLP unless
    #: ``WARMSTART_OFFLINE=1``). Every folder is checked (no pickle without ``init.allow_pickle``).
    model_dir: str = ""
    #: Training data file.
    train_file: str = ""
    #: Evaluation data file (same format as ``train_file``).
    eval_file: str = ""
    #: Label names in head order; empty = the sorted set of labels found in ``train_file``.
    labels: list[str] | None = None
    #: Longest tokenized input (special tokens included); longer inputs are truncated.
    max_seq_len: int = field(default=128, metadata=limits(ge=8))
    #: Batch size of the evaluation pass.
    eval_batch_size: int = field(default=64, metadata=limits(gt=0))
    #: Where a ``model_dir`` URI is downloaded; the config translator fills in ``<run.dir>/pretrained``.
    cache_dir: str | None = field(default=None, metadata=output_folder())
    #: Store settings for a ``model_dir`` URI; the config translator copies the top-level ``store:``.
    store: StoreConfig | None = None
    #: format paddlenlp: the PaddleNLP dataset whose reader reads the files (``chnsenticorp``, ``msra_ner``, ...).
    paddlenlp_dataset: str | None = None
    #: format paddlenlp: the dataset's configuration name (``tnews`` for ``clue``); None when it has none.
    paddlenlp_dataset_config: str | None = None
    #: format paddlenlp: the split the evaluation file is read as (the training file is ``train``).
    paddlenlp_eval_split: str = "dev"

    def validate(self, path: str) -> None:
        for name in ("model_dir", "train_file", "eval_file"):
            if not getattr(self, name):
                raise ConfigError(f"{path}.{name}: required for task.kind nlp_* (a path)")
        if self.max_seq_len < 8:
            raise ConfigError(f"{path}.max_seq_len: must be >= 8, got {self.max_seq_len}")
        if self.eval_batch_size <= 0:
            raise ConfigError(f"{path}.eval_batch_size: must be > 0, got {self.eval_batch_size}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"{path}.labels: duplicate names in {self.labels}")
        fmt = getattr(self, "format", "")
        if fmt == "paddlenlp" and not self.paddlenlp_dataset:
            raise ConfigError(
                f"{path}.paddlenlp_dataset: required with format paddlenlp (e.g. chnsenticorp, msra_ner)"
            )
        if self.paddlenlp_dataset and fmt != "paddlenlp":
            raise ConfigError(f"{path}.paddlenlp_dataset: only used with format paddlenlp, not {fmt!r}")


@dataclass
class SeqClsOptions(NlpOptions):
    """Sequence classification: one label per text (or text pair)."""

    #: Data format; auto = a ``save_to_disk`` folder is ``hf_disk``, a file goes by suffix (.csv, .tsv,
    #: .jsonl / .json). ``hf_disk``: Hugging Face ``datasets`` folders; ``paddlenlp``: files read by the
    #: PaddleNLP dataset reader ``paddlenlp_dataset`` (docs/nlp.md).
    format: Literal["auto", "csv", "tsv", "jsonl", "hf_disk", "paddlenlp"] = "auto"
    #: Column (CSV/TSV header name, JSONL key) holding the text.
    text_column: str = "text"
    #: Column holding the second text of a pair (sentence-pair tasks); None = single texts.
    text_pair_column: str | None = None
    #: Column holding the label.
    label_column: str = "label"


@dataclass
class TokenClsOptions(NlpOptions):
    """Token classification (NER): CoNLL files, one ``token ... tag`` line per word, blank line per sentence;
    or Hugging Face ``save_to_disk`` folders / PaddleNLP dataset files with a tokens and a tags column.

    Tags use the BIO scheme (``B-PER``, ``I-PER``, ``O``); entity-level metrics come from PaddleNLP's
    ChunkEvaluator.
    """

    #: conll: whitespace-separated columns, token first, tag last. ``hf_disk``: Hugging Face ``datasets``
    #: folders; ``paddlenlp``: files read by the PaddleNLP dataset reader ``paddlenlp_dataset`` (docs/nlp.md).
    format: Literal["conll", "hf_disk", "paddlenlp"] = "conll"
    #: hf_disk / paddlenlp: the column holding a sentence's words (a list of strings).
    tokens_column: str = "tokens"
    #: hf_disk / paddlenlp: the column holding their tags (names, or ClassLabel / label_list numbers);
    #: PaddleNLP's NER readers call it ``labels``.
    tags_column: str = "ner_tags"
