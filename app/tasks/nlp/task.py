"""The two NLP task adapters: ``nlp_seq_cls`` (text / text-pair classification) and ``nlp_token_cls`` (NER).

Both wrap a PaddleNLP ``AutoModelFor*Classification`` built from ``task.options.model_dir`` (a folder, a
store URI or a model name in PaddleNLP's cache): that folder gives the architecture and the initial (pretrained) weights of a cold start; the trainer's own
checkpoints (exact resume, ``init.from``) replace them afterwards. Data is read and tokenized once, here.
Parameter names are PaddleNLP's: ``bert.*`` / ``ernie.*`` for the backbone, ``classifier.*`` for the head.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F

from app.checkpoint.labels import LabelSpace
from app.config.typed import from_data
from app.tasks.nlp import data, data_sources, export, model_name, pretrained
from app.tasks.nlp.checked_dir import stage_model_dir
from app.tasks.nlp.features import IGNORE, Encoded, encode_tags, encode_texts, pad_batch
from app.tasks.nlp.metrics import chunk_metrics, seq_metrics, word_level
from app.tasks.nlp.options import NlpOptions, SeqClsOptions, TokenClsOptions, is_uri

__all__ = ["SeqClsTask", "TokenClsTask"]

log = logging.getLogger(__name__)


def _local(path: str) -> Path:
    return Path(path[len("file://") :] if path.startswith("file://") else path)


def resolve_model_dir(opts: NlpOptions) -> Path:
    """The folder ``model_dir`` names: a store URI's download, a local folder, or a model name's cache."""
    if is_uri(opts.model_dir):
        cache = Path(opts.cache_dir or "runs/run/pretrained")
        folder = pretrained.fetch_model_dir(opts.model_dir, cache, opts.store)
    else:
        folder = _local(opts.model_dir)
        if not folder.exists() and model_name.looks_like_name(opts.model_dir):
            folder = model_name.resolve_name(opts.model_dir)
    return pretrained.check_model_dir(folder, opts.model_dir)


def _read_seq(opts: SeqClsOptions, path: Path, split: str) -> list[data.TextExample]:
    """Examples of one data file or folder in ``opts.format`` (split: for PaddleNLP's readers)."""
    cols = (opts.text_column, opts.text_pair_column, opts.label_column)
    if opts.format == "hf_disk" or (opts.format == "auto" and data_sources.is_hf_disk(path)):
        return data_sources.read_hf_disk(path, *cols)
    if opts.format == "paddlenlp":
        name, config = str(opts.paddlenlp_dataset), opts.paddlenlp_dataset_config
        return data_sources.read_paddlenlp(path, name, config, split, cols)
    return data.read_text_examples(path, opts.format, *cols)


def _read_tags(opts: TokenClsOptions, path: Path, split: str) -> list[data.TagExample]:
    """NER sentences of one CoNLL file, save_to_disk folder or PaddleNLP dataset file."""
    if opts.format == "hf_disk":
        return data_sources.read_hf_disk_tags(path, opts.tokens_column, opts.tags_column)
    if opts.format == "paddlenlp":
        name, config = str(opts.paddlenlp_dataset), opts.paddlenlp_dataset_config
        return data_sources.read_paddlenlp_tags(
            path, name, config, split, opts.tokens_column, opts.tags_column
        )
    return data.read_conll(path)


class _NlpTask:
    """What both kinds share: model folder, tokenizer, batches, export."""

    kind = ""
    opts: NlpOptions
    labels: list[str]
    train: Encoded
    eval: Encoded

    def _setup(self, opts: NlpOptions, allow_pickle: bool) -> None:
        self.opts = opts
        self.source_dir = resolve_model_dir(opts)
        # PaddleNLP only ever sees a checked copy: no pickle in it unless init.allow_pickle (checked_dir)
        self.model_dir = stage_model_dir(self.source_dir, opts.model_dir, allow_pickle)
        self.tokenizer = pretrained.load_tokenizer(self.model_dir)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)

    def build_model(self) -> paddle.nn.Layer:
        return pretrained.load_model(self.model_dir, self.kind, self.labels)

    def label_space(self) -> LabelSpace:
        """The label (seq_cls) or tag (token_cls) names in head order; the head is ``classifier.*``."""
        return LabelSpace("labels" if self.kind == "seq" else "tags", tuple(self.labels), ("classifier.*",))

    def train_size(self) -> int:
        return len(self.train)

    def train_arrays(self, indices: list[int], epoch: int) -> tuple[np.ndarray, ...]:
        return tuple(pad_batch(self.train, list(indices), self.pad_id))

    def to_batch(self, arrays: tuple[np.ndarray, ...]) -> tuple[paddle.Tensor, ...]:
        return tuple(paddle.to_tensor(a) for a in arrays)

    def _eval_batches(self):
        n, size = len(self.eval), self.opts.eval_batch_size
        for start in range(0, n, size):
            yield pad_batch(self.eval, list(range(start, min(n, start + size))), self.pad_id)

    def export(self, model: paddle.nn.Layer, out_dir: Path) -> list[Path]:
        return export.export_all(model, self.tokenizer, out_dir)


class SeqClsTask(_NlpTask):
    kind = "seq"

    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:
        opts: SeqClsOptions = from_data(SeqClsOptions, options, "task.options")
        self._setup(opts, allow_pickle)
        train = _read_seq(opts, _local(opts.train_file), "train")
        evals = _read_seq(opts, _local(opts.eval_file), opts.paddlenlp_eval_split)
        self.labels = data.label_set(opts.labels, [e.label for e in train], opts.train_file)
        data.check_labels([(e.label, e.where) for e in train + evals], self.labels)
        self.train = encode_texts(self.tokenizer, train, self.labels, opts.max_seq_len)
        self.eval = encode_texts(self.tokenizer, evals, self.labels, opts.max_seq_len)
        self.data_source = f"{opts.train_file} ({len(train)} examples; labels {', '.join(self.labels)})"

    def loss(self, model: paddle.nn.Layer, batch: tuple[paddle.Tensor, ...]) -> paddle.Tensor:
        ids, types, y = batch
        return F.cross_entropy(model(ids, token_type_ids=types), y)

    @paddle.no_grad()
    def evaluate(self, model: paddle.nn.Layer) -> dict[str, float]:
        preds, golds, loss_sum = [], [], 0.0
        for ids, types, y in self._eval_batches():
            logits = model(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types))
            loss_sum += float(F.cross_entropy(logits, paddle.to_tensor(y), reduction="sum"))
            preds.append(logits.argmax(axis=-1).numpy())
            golds.append(y)
        pred, gold = np.concatenate(preds), np.concatenate(golds)
        return {**seq_metrics(pred, gold, len(self.labels)), "eval_loss": loss_sum / len(gold)}


class TokenClsTask(_NlpTask):
    kind = "token"

    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:
        opts: TokenClsOptions = from_data(TokenClsOptions, options, "task.options")
        self._setup(opts, allow_pickle)
        train = _read_tags(opts, _local(opts.train_file), "train")
        evals = _read_tags(opts, _local(opts.eval_file), opts.paddlenlp_eval_split)
        self.labels = data.label_set(opts.labels, [t for e in train for t in e.tags], opts.train_file)
        data.check_labels([(t, e.where) for e in train + evals for t in e.tags], self.labels)
        self.train = encode_tags(self.tokenizer, train, self.labels, opts.max_seq_len)
        self.eval = encode_tags(self.tokenizer, evals, self.labels, opts.max_seq_len)
        self.data_source = f"{opts.train_file} ({len(train)} sentences; tags {', '.join(self.labels)})"

    def _token_loss(self, logits: paddle.Tensor, y: paddle.Tensor, reduction: str = "mean") -> paddle.Tensor:
        flat = logits.reshape([-1, logits.shape[-1]])
        return F.cross_entropy(flat, y.reshape([-1]), ignore_index=IGNORE, reduction=reduction)

    def loss(self, model: paddle.nn.Layer, batch: tuple[paddle.Tensor, ...]) -> paddle.Tensor:
        ids, types, y = batch
        return self._token_loss(model(ids, token_type_ids=types), y)

    @paddle.no_grad()
    def evaluate(self, model: paddle.nn.Layer) -> dict[str, float]:
        words, loss_sum, count = [], 0.0, 0
        for ids, types, y in self._eval_batches():
            logits = model(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types))
            loss_sum += float(self._token_loss(logits, paddle.to_tensor(y), "sum"))
            count += int(np.sum(y != IGNORE))
            words.append(word_level(logits.argmax(axis=-1).numpy(), y))
        return {**chunk_metrics(words, self.labels), "eval_loss": loss_sum / max(count, 1)}
