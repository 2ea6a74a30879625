"""The CTC branch of PP-OCRv4's ``MultiHead``: the SVTR sequence encoder and the CTC classifier.

Parameter names follow PaddleOCR release 2.8 (``head.ctc_encoder.encoder.*``, ``head.ctc_head.fc``):

* ``conv1`` (k = kernel_size, C -> C/8), ``conv2`` (1x1, -> hidden_dims): conv (no bias) + BatchNorm + Swish;
* ``svtr_block.{i}``: post-residual transformer blocks, ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``
  (LayerNorm eps 1e-5, 8 heads, qkv with bias, q scaled by head_dim^-0.5 *before* q k^T, dropout 0.1
  on attention weights, after ``proj`` and after each MLP linear; MLP ratio 2 with Swish);
* ``norm`` (LayerNorm eps 1e-6), ``conv3`` (1x1, -> C), concatenation ``[shortcut, conv3]`` on channels,
  ``conv4`` (k, 2C -> C/8), ``conv1x1`` (-> dims), then the rows are squeezed into ``[N, W, dims]``.

With ``use_guide`` the encoder input is a gradient-stopped copy, and the shortcut is that copy too: the CTC
loss trains only the neck and the classifier; the backbone learns from the NRTR branch.
"""

from __future__ import annotations

import math
from typing import Any

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingUniform, TruncatedNormal, Uniform
from paddle.regularizer import L2Decay

__all__ = ["SvtrEncoder", "SequenceEncoder", "CTCHead", "ctc_branch"]

_TRUNC = TruncatedNormal(std=0.02)


class ConvBNSwish(nn.Layer):
    def __init__(self, cin: int, cout: int, kernel: list[int] | int, padding: list[int] | int = 0) -> None:
        super().__init__()
        attr = ParamAttr(initializer=KaimingUniform())
        self.conv = nn.Conv2D(cin, cout, kernel, 1, padding, weight_attr=attr, bias_attr=False)
        self.norm = nn.BatchNorm2D(cout)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.swish(self.norm(self.conv(x)))


class GlobalAttention(nn.Layer):
    def __init__(self, dim: int, heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.reshape([0, -1, self.heads, self.head_dim]).transpose([0, 2, 1, 3])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        # q, k, v are the three thirds of the qkv output (upstream reshapes to [N, T, 3, heads, d] and
        # indexes; splitting first moves the same values and keeps Paddle Inference's self-attention
        # fuse pass, which dies with SIGILL on CPUs without AVX-512, from matching the graph).
        q, k, v = paddle.split(self.qkv(x), 3, axis=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        weights = self.attn_drop(F.softmax((q * self.scale).matmul(k.transpose([0, 1, 3, 2])), axis=-1))
        out = weights.matmul(v).transpose([0, 2, 1, 3]).reshape([0, -1, self.dim])
        return self.proj_drop(self.proj(out))


class Mlp(nn.Layer):
    """fc1 -> activation -> dropout -> fc2 -> dropout (names ``fc1``/``fc2`` as upstream)."""

    def __init__(self, dim: int, hidden: int, act: nn.Layer, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SvtrBlock(nn.Layer):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop: float, attn_drop: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mixer = GlobalAttention(dim, heads, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), nn.Swish(), drop)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SvtrEncoder(nn.Layer):
    """``[N, C, 1, T]`` -> ``[N, dims, 1, T]`` (upstream ``EncoderWithSVTR``)."""

    def __init__(
        self,
        cin: int,
        dims: int = 120,
        depth: int = 2,
        hidden_dims: int = 120,
        kernel_size: tuple[int, int] = (1, 3),
        use_guide: bool = True,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        drop: float = 0.1,
        attn_drop: float = 0.1,
    ) -> None:
        super().__init__()
        self.use_guide = use_guide
        kernel = list(kernel_size)
        pad = [kernel[0] // 2, kernel[1] // 2]
        self.conv1 = ConvBNSwish(cin, cin // 8, kernel, pad)
        self.conv2 = ConvBNSwish(cin // 8, hidden_dims, 1)
        self.svtr_block = nn.LayerList(
            [SvtrBlock(hidden_dims, heads, mlp_ratio, drop, attn_drop) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(hidden_dims, epsilon=1e-6)
        self.conv3 = ConvBNSwish(hidden_dims, cin, 1)
        self.conv4 = ConvBNSwish(2 * cin, cin // 8, kernel, pad)
        self.conv1x1 = ConvBNSwish(cin // 8, dims, 1)
        self.out_channels = dims
        for layer in self.sublayers():
            if isinstance(layer, nn.Linear):
                _TRUNC(layer.weight)
                Constant(0.0)(layer.bias)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.use_guide:
            x = x.clone()
            x.stop_gradient = True
        shortcut = x
        z = self.conv2(self.conv1(x))
        _, c, h, w = z.shape
        z = z.flatten(2).transpose([0, 2, 1])
        for block in self.svtr_block:
            z = block(z)
        z = self.norm(z).reshape([0, h, w, c]).transpose([0, 3, 1, 2])
        z = paddle.concat((shortcut, self.conv3(z)), axis=1)
        return self.conv1x1(self.conv4(z))


class SequenceEncoder(nn.Layer):
    """Holds the encoder as ``encoder`` (upstream name) and squeezes its single row: ``[N, T, dims]``."""

    def __init__(self, cin: int, **svtr: object) -> None:
        super().__init__()
        self.encoder = SvtrEncoder(cin, **svtr)  # type: ignore[arg-type]
        self.out_channels = self.encoder.out_channels

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.encoder(x).squeeze(axis=2).transpose([0, 2, 1])


class CTCHead(nn.Layer):
    """One linear layer ``fc`` to the CTC classes; softmax in eval mode (upstream returns probabilities
    at inference). Its weight and bias carry L2 decay ``fc_decay``, uniform init +-1/sqrt(in)."""

    def __init__(self, cin: int, num_classes: int, fc_decay: float = 1e-5) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(cin)

        def attr() -> ParamAttr:
            return ParamAttr(regularizer=L2Decay(fc_decay), initializer=Uniform(-bound, bound))

        self.fc = nn.Linear(cin, num_classes, weight_attr=attr(), bias_attr=attr())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        logits = self.fc(x)
        return logits if self.training else F.softmax(logits, axis=2)


def ctc_branch(cin: int, cfg: Any) -> tuple[SequenceEncoder, CTCHead]:
    """``MultiHead``'s CTC branch (``ctc_encoder`` then ``ctc_head``, created in that order) from an
    architecture config with ``dims``, ``depth``, ``hidden_dims``, ``kernel_size``, ``use_guide``,
    ``ctc_classes`` and ``fc_decay``."""
    encoder = SequenceEncoder(
        cin,
        dims=cfg.dims,
        depth=cfg.depth,
        hidden_dims=cfg.hidden_dims,
        kernel_size=cfg.kernel_size,
        use_guide=cfg.use_guide,
    )
    return encoder, CTCHead(encoder.out_channels, cfg.ctc_classes, cfg.fc_decay)
