"""The SAR guidance branch of PP-OCRv3's ``MultiHead`` (training only) and its ``SARLoss``, written here
from the description of SAR (show, attend and read). Parameter names follow PaddleOCR release 2.8
(``head.sar_head.encoder.*``, ``head.sar_head.decoder.*``):

* ``encoder``: max-pool the backbone's ``[N, C, H, W]`` over H, a 2-layer forward LSTM ``rnn_encoder``
  (hidden ``enc_dim``, dropout 0.1 between layers) over the W columns, the state at the last *valid*
  column (``ceil(valid_ratio * W)``; the last column without ratios) through ``linear``: one holistic
  feature per image;
* ``decoder`` (teacher-forced, parallel): ``[holistic, embedding(label)]`` through a 2-layer LSTM
  ``rnn_decoder``; a 2-D attention per step (query ``conv1x1_1``, keys ``conv3x3_1`` over the feature
  map, ``tanh``, score ``conv1x1_2``, columns past the valid width masked, softmax over H x W); the
  ``prediction`` linear over ``[lstm state, glimpse, holistic]`` then dropout 0.1; the first step (the
  holistic input) is dropped, leaving one row per label position.

Classes: the SAR dictionary is the characters + ``<UKN>``, ``<BOS/EOS>`` (start, index classes - 2) and
``<PAD>`` (index classes - 1, also the embedding's padding row); the prediction has ``classes - 1`` outputs.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["SARHead", "sar_loss"]


def _valid_counts(valid_ratios: paddle.Tensor, size: int) -> paddle.Tensor:
    """``min(size, ceil(ratio * size))`` per image, computed in float32 like upstream."""
    counts = paddle.ceil(valid_ratios.astype("float32") * size).astype("int64")
    return paddle.minimum(counts, paddle.full_like(counts, size))


class SAREncoder(nn.Layer):
    def __init__(self, d_model: int, d_enc: int, drop: float = 0.1) -> None:
        super().__init__()
        self.rnn_encoder = nn.LSTM(d_model, d_enc, num_layers=2, dropout=drop, direction="forward")
        self.linear = nn.Linear(d_enc, d_enc)

    def forward(self, feat: paddle.Tensor, valid_ratios: paddle.Tensor | None) -> paddle.Tensor:
        columns = F.max_pool2d(feat, kernel_size=(feat.shape[2], 1), stride=1).squeeze(2).transpose([0, 2, 1])
        states = self.rnn_encoder(columns)[0]  # [N, W, d_enc]
        if valid_ratios is None:
            last = states[:, -1, :]
        else:
            index = _valid_counts(valid_ratios, states.shape[1]) - 1
            last = paddle.stack([states[i, int(index[i]), :] for i in range(states.shape[0])])
        return self.linear(last)


class ParallelSARDecoder(nn.Layer):
    def __init__(self, classes: int, d_model: int, d_enc: int, d_k: int, pred_drop: float = 0.1) -> None:
        super().__init__()
        self.conv1x1_1 = nn.Linear(d_enc, d_k)
        self.conv3x3_1 = nn.Conv2D(d_model, d_k, kernel_size=3, stride=1, padding=1)
        self.conv1x1_2 = nn.Linear(d_k, 1)
        self.rnn_decoder = nn.LSTM(d_enc, d_enc, num_layers=2, dropout=0.0, direction="forward")
        self.embedding = nn.Embedding(classes, d_enc, padding_idx=classes - 1)
        self.pred_dropout = nn.Dropout(pred_drop)
        self.prediction = nn.Linear(d_enc + d_model + d_enc, classes - 1)

    def _attend(
        self, inputs: paddle.Tensor, feat: paddle.Tensor, holistic: paddle.Tensor, valid: paddle.Tensor | None
    ) -> paddle.Tensor:
        states = self.rnn_decoder(inputs)[0]  # [N, T, d_enc]
        n, steps, _ = states.shape
        query = self.conv1x1_1(states).unsqueeze([3, 4])  # [N, T, d_k, 1, 1]
        keys = self.conv3x3_1(feat).unsqueeze(1)  # [N, 1, d_k, H, W]
        scores = self.conv1x1_2(paddle.tanh(keys + query).transpose([0, 1, 3, 4, 2]))  # [N, T, H, W, 1]
        h, w = scores.shape[2], scores.shape[3]
        if valid is not None:
            width = _valid_counts(valid, w)
            columns = paddle.arange(w, dtype="int64").reshape([1, 1, 1, w, 1])
            masked = columns >= width.reshape([-1, 1, 1, 1, 1])
            scores = paddle.where(masked, paddle.full_like(scores, float("-inf")), scores)
        weights = F.softmax(scores.reshape([n, steps, -1]), axis=-1).reshape([n, steps, h, w, 1])
        weights = weights.transpose([0, 1, 4, 2, 3])  # [N, T, 1, H, W]
        glimpse = (feat.unsqueeze(1) * weights).sum(axis=[3, 4])  # [N, T, C]
        holistic = holistic.expand([n, steps, holistic.shape[-1]])
        return self.pred_dropout(self.prediction(paddle.concat((states, glimpse, holistic), axis=2)))

    def forward(
        self, feat: paddle.Tensor, holistic: paddle.Tensor, labels: paddle.Tensor, valid: paddle.Tensor | None
    ) -> paddle.Tensor:
        holistic = holistic.unsqueeze(1)
        inputs = paddle.concat((holistic, self.embedding(labels)), axis=1)
        return self._attend(inputs, feat, holistic, valid)[:, 1:, :]


class SARHead(nn.Layer):
    """``(feat [N, C, H, W], labels [N, L] int64, valid_ratios [N] or None)`` -> logits
    ``[N, L, classes - 1]`` (teacher-forced training pass)."""

    def __init__(self, cin: int, classes: int, enc_dim: int = 512, d_k: int = 512) -> None:
        super().__init__()
        self.encoder = SAREncoder(cin, enc_dim)
        self.decoder = ParallelSARDecoder(classes, cin, enc_dim, d_k)

    def forward(
        self, feat: paddle.Tensor, labels: paddle.Tensor, valid_ratios: paddle.Tensor | None = None
    ) -> paddle.Tensor:
        return self.decoder(feat, self.encoder(feat, valid_ratios), labels, valid_ratios)


def sar_loss(logits: paddle.Tensor, labels: paddle.Tensor, classes: int) -> paddle.Tensor:
    """PaddleOCR's ``SARLoss``: cross-entropy of the logits' first ``L - 1`` rows against the label shifted
    by one (``<BOS>`` dropped), the padding index (``classes - 1``) ignored, mean over the kept tokens."""
    logits = logits[:, :-1, :]
    target = labels.astype("int64")[:, 1:].reshape([-1])
    flat = logits.reshape([-1, logits.shape[2]])
    return F.cross_entropy(flat, target, ignore_index=classes - 1, reduction="mean")
