"""The NRTR guidance branch of PP-OCRv4's ``MultiHead`` (training only), written here from its description.

Parameter names follow PaddleOCR release 2.8 (``head.before_gtc.1.fc``, ``head.gtc_head.*``):

* ``before_gtc``: flatten the backbone's ``[N, C, 1, T]`` to ``[N, T, C]`` and project to ``d_model``
  with a bias-free linear (index 1 in upstream's ``Sequential(Flatten, FCTranspose)``);
* ``gtc_head``: a decoder-only transformer. ``embedding.embedding`` (``classes + 1`` rows, padding index 0,
  scaled by sqrt(d_model)), the sinusoidal ``positional_encoding.pe`` buffer ``[5000, 1, d]`` with dropout
  0.1, ``decoder.{0..3}`` post-norm blocks (causal self-attention ``qkv``, cross-attention ``q``/``kv`` over
  the projected image features, ReLU MLP of 4 d; LayerNorm eps 1e-5; attention scores scaled *after*
  q k^T; residual dropout 0.1, MLP dropout 0.1, no attention dropout) and ``tgt_word_prj`` (no bias).

Teacher forcing: the target is the ``<s> text </s>`` label cut to ``2 + max(length)`` tokens, its last
token dropped; the loss compares the logits with the same label shifted by one.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Constant, Normal, XavierNormal

from app.tasks.ocr.arch.svtr_neck import Mlp

__all__ = ["BeforeGtc", "NrtrDecoder"]


class _Transposed(nn.Layer):
    """``[N, C, T]`` -> ``[N, T, C]`` then a bias-free linear ``fc`` (upstream ``FCTranspose``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout, bias_attr=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(x.transpose([0, 2, 1]))


def BeforeGtc(cin: int, d_model: int) -> nn.Sequential:  # noqa: N802 (a layer factory)
    return nn.Sequential(nn.Flatten(2), _Transposed(cin, d_model))


class Attention(nn.Layer):
    """Multi-head attention: fused ``qkv`` for self-attention, ``q`` + fused ``kv`` for cross-attention."""

    def __init__(self, dim: int, heads: int, self_attn: bool) -> None:
        super().__init__()
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.self_attn = self_attn
        if self_attn:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self, query: paddle.Tensor, key: paddle.Tensor | None = None, mask: paddle.Tensor | None = None
    ) -> paddle.Tensor:
        n_q = query.shape[1]
        if self.self_attn:
            qkv = self.qkv(query).reshape([0, n_q, 3, self.heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
            q, k, v = qkv[0], qkv[1], qkv[2]
        else:
            assert key is not None
            q = self.q(query).reshape([0, n_q, self.heads, self.head_dim]).transpose([0, 2, 1, 3])
            kv = self.kv(key).reshape([0, key.shape[1], 2, self.heads, self.head_dim])
            kv = kv.transpose([2, 0, 3, 1, 4])
            k, v = kv[0], kv[1]
        scores = q.matmul(k.transpose([0, 1, 3, 2])) * self.scale
        if mask is not None:
            scores = scores + mask
        out = F.softmax(scores, axis=-1).matmul(v).transpose([0, 2, 1, 3]).reshape([0, n_q, self.dim])
        return self.out_proj(out)


class DecoderBlock(nn.Layer):
    def __init__(self, dim: int, heads: int, ffn: int, drop: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, self_attn=True)
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.dropout1 = nn.Dropout(drop)
        self.cross_attn = Attention(dim, heads, self_attn=False)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.dropout2 = nn.Dropout(drop)
        self.mlp = Mlp(dim, ffn, nn.ReLU(), drop)
        self.norm3 = nn.LayerNorm(dim, epsilon=1e-5)
        self.dropout3 = nn.Dropout(drop)

    def forward(self, tgt: paddle.Tensor, memory: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(tgt, mask=mask)))
        tgt = self.norm2(tgt + self.dropout2(self.cross_attn(tgt, key=memory)))
        return self.norm3(tgt + self.dropout3(self.mlp(tgt)))


class PositionalEncoding(nn.Layer):
    def __init__(self, dim: int, drop: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(drop)
        position = paddle.arange(0, max_len, dtype="float32").unsqueeze(1)
        freq = paddle.exp(paddle.arange(0, dim, 2).astype("float32") * (-math.log(10000.0) / dim))
        pe = paddle.zeros([max_len, dim])
        pe[:, 0::2] = paddle.sin(position * freq)
        pe[:, 1::2] = paddle.cos(position * freq)
        self.register_buffer("pe", pe.unsqueeze(1))  # [max_len, 1, dim]

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x.transpose([1, 0, 2])
        x = x + self.pe[: x.shape[0], :]
        return self.dropout(x).transpose([1, 0, 2])


class Embeddings(nn.Layer):
    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        init = paddle.ParamAttr(initializer=Normal(0.0, dim**-0.5))
        self.embedding = nn.Embedding(vocab, dim, padding_idx=0, weight_attr=init)
        self.dim = dim

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.embedding(x) * math.sqrt(self.dim)


class NrtrDecoder(nn.Layer):
    """Upstream's ``Transformer`` with no encoder layers; ``forward`` is the teacher-forced training pass
    ``(memory [N, T, d], labels [N, L] int64, lengths [N])`` -> logits ``[N, 1 + max(lengths), classes+1]``."""

    def __init__(self, num_classes: int, d_model: int = 384, layers: int = 4, max_len: int = 25) -> None:
        super().__init__()
        heads, ffn, drop = d_model // 32, 4 * d_model, 0.1
        self.out_channels = num_classes + 1
        self.max_len = max_len
        self.embedding = Embeddings(self.out_channels, d_model)
        self.positional_encoding = PositionalEncoding(d_model, drop)
        self.decoder = nn.LayerList([DecoderBlock(d_model, heads, ffn, drop) for _ in range(layers)])
        self.tgt_word_prj = nn.Linear(d_model, self.out_channels, bias_attr=False)
        for layer in self.sublayers():
            if isinstance(layer, nn.Linear):
                XavierNormal()(layer.weight)
                if layer.bias is not None:
                    Constant(0.0)(layer.bias)

    @staticmethod
    def causal_mask(size: int) -> paddle.Tensor:
        """``[1, 1, size, size]``: 0 on and below the diagonal, -inf above."""
        inf = paddle.triu(paddle.full([size, size], float("-inf"), dtype="float32"), diagonal=1)
        return (paddle.zeros([size, size], dtype="float32") + inf).unsqueeze([0, 1])

    def forward(self, memory: paddle.Tensor, labels: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
        tgt = labels[:, : 2 + int(lengths.max())][:, :-1]
        tgt = self.positional_encoding(self.embedding(tgt))
        mask = self.causal_mask(tgt.shape[1])
        for block in self.decoder:
            tgt = block(tgt, memory, mask)
        return self.tgt_word_prj(tgt)
