"""Tokenize examples once (deterministically) into numpy id arrays, and pad a list of them into a batch.

Padding uses the tokenizer's pad id, which BERT/ERNIE in PaddleNLP turn into the attention mask
themselves, so a model (and its exported inference program) needs only ``input_ids`` and
``token_type_ids``. Token-classification labels sit on each word's first sub-token; every other position
holds ``IGNORE`` and is left out of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.tasks.nlp.data import TagExample, TextExample

__all__ = ["IGNORE", "Encoded", "encode_texts", "encode_tags", "pad_batch"]

#: Label of positions that are not a word's first sub-token (special tokens, continuation pieces).
IGNORE = -100


@dataclass
class Encoded:
    """One split, tokenized: per example an id array, a token-type array and labels."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: list[np.ndarray]  # seq: shape [] per example; token: one per position (IGNORE elsewhere)
    words: list[int]  # token cls: words kept after truncation (scored); seq: 0

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(tok: Any, examples: list[TextExample], labels: list[str], max_len: int) -> Encoded:
    index = {name: i for i, name in enumerate(labels)}
    ids, types, ys = [], [], []
    for ex in examples:
        enc = tok(ex.text, text_pair=ex.pair, max_length=max_len, truncation=True)
        ids.append(np.asarray(enc["input_ids"], dtype="int64"))
        types.append(np.asarray(enc["token_type_ids"], dtype="int64"))
        ys.append(np.asarray(index[ex.label], dtype="int64"))
    return Encoded(ids, types, ys, [0] * len(ids))


def _word_pieces(tok: Any, word: str) -> list[int]:
    pieces = tok.convert_tokens_to_ids(tok.tokenize(word))
    return pieces or [tok.unk_token_id]


def encode_tags(tok: Any, examples: list[TagExample], labels: list[str], max_len: int) -> Encoded:
    index = {name: i for i, name in enumerate(labels)}
    ids, types, ys, words = [], [], [], []
    for ex in examples:
        seq, lab, kept = [tok.cls_token_id], [IGNORE], 0
        for word, tag in zip(ex.tokens, ex.tags, strict=False):
            pieces = _word_pieces(tok, word)
            if len(seq) + len(pieces) > max_len - 1:  # keep room for [SEP]; later words are dropped
                break
            seq += pieces
            lab += [index[tag]] + [IGNORE] * (len(pieces) - 1)
            kept += 1
        seq.append(tok.sep_token_id)
        lab.append(IGNORE)
        ids.append(np.asarray(seq, dtype="int64"))
        types.append(np.zeros(len(seq), dtype="int64"))
        ys.append(np.asarray(lab, dtype="int64"))
        words.append(kept)
    return Encoded(ids, types, ys, words)


def pad_batch(enc: Encoded, indices: list[int], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, token_type_ids, labels) as int64 arrays padded to the longest example of the batch."""
    width = max(len(enc.input_ids[i]) for i in indices)
    ids = np.full((len(indices), width), pad_id, dtype="int64")
    types = np.zeros((len(indices), width), dtype="int64")
    per_token = enc.labels[indices[0]].ndim == 1
    ys = (
        np.full((len(indices), width), IGNORE, dtype="int64")
        if per_token
        else np.zeros(len(indices), "int64")
    )
    for row, i in enumerate(indices):
        n = len(enc.input_ids[i])
        ids[row, :n] = enc.input_ids[i]
        types[row, :n] = enc.token_type_ids[i]
        if per_token:
            ys[row, :n] = enc.labels[i]
        else:
            ys[row] = enc.labels[i]
    return ids, types, ys
