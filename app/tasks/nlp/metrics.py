"""Evaluation metrics: accuracy and macro-F1 for sequences, entity-level P/R/F1 for token tagging.

Entity scores come from PaddleNLP's ``ChunkEvaluator`` (BIO tags, word level: each word is scored by the
prediction on its first sub-token).
"""

from __future__ import annotations

import numpy as np

from app.tasks.nlp.features import IGNORE

__all__ = ["seq_metrics", "chunk_metrics", "word_level"]


def seq_metrics(pred: np.ndarray, gold: np.ndarray, num_classes: int) -> dict[str, float]:
    """accuracy and macro_f1 (mean per-class F1 over all ``num_classes`` classes; an empty class counts 0)."""
    f1s = []
    for c in range(num_classes):
        tp = float(np.sum((pred == c) & (gold == c)))
        denom = float(np.sum(pred == c) + np.sum(gold == c))
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float(np.mean(pred == gold)), "macro_f1": float(np.mean(f1s))}


def word_level(pred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token arrays -> (lengths, word predictions, word labels), keeping only labelled positions."""
    rows = [np.nonzero(row != IGNORE)[0] for row in labels]
    lengths = np.array([len(r) for r in rows], dtype="int64")
    width = max(1, int(lengths.max(initial=0)))
    wp = np.zeros((len(rows), width), dtype="int64")
    wl = np.zeros((len(rows), width), dtype="int64")
    for i, pos in enumerate(rows):
        wp[i, : len(pos)] = pred[i, pos]
        wl[i, : len(pos)] = labels[i, pos]
    return lengths, wp, wl


def chunk_metrics(
    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]], labels: list[str]
) -> dict[str, float]:
    """precision / recall / f1 over entities, from (lengths, word preds, word labels) batches."""
    import paddle
    from paddlenlp.metrics import ChunkEvaluator

    evaluator = ChunkEvaluator(label_list=labels)
    for lengths, wp, wl in batches:
        counts = evaluator.compute(lengths, paddle.to_tensor(wp), paddle.to_tensor(wl))
        evaluator.update(*[c.numpy() for c in counts])
    precision, recall, f1 = evaluator.accumulate()
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
