"""The CRNN-class text recognizer written for this project: conv backbone -> sequence encoder -> CTC head.

Parameter names are stable and grouped so warm-start and freeze patterns are simple:

* ``backbone.*`` - PP-LCNet-style stem and depthwise-separable stages. Height is reduced 16x (strides
  2, 1, 2, 2, 2 on H) and width 4x (2, 1, 2, 1, 1 on W), then the remaining rows are stacked into the
  features, so a ``3x48x320`` line becomes 80 time steps (any width works: the export takes
  ``[N, 3, H, W]`` with the trained H);
* ``neck.*`` - the sequence encoder: ``bilstm`` (bidirectional LSTM, CRNN) or ``mixer`` (blocks of a
  depthwise-conv position mixer, global multi-head self-attention and an MLP);
* ``head.*`` - the CTC classifier ``head.fc`` over ``num_classes`` = dictionary + blank. A changed
  dictionary changes only ``head.*``: warm-start it with ``init.mode: partial`` and
  ``init.ignore: ["head.*"]``.

``forward`` returns logits ``[N, T, C]``; :class:`SoftmaxExport` appends the softmax that PaddleOCR's
predictor expects.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from app.tasks.ocr.options import ModelOptions

__all__ = [
    "CLASS_LAYERS",
    "Backbone",
    "BiLstmNeck",
    "MixerNeck",
    "CtcHead",
    "Recognizer",
    "SoftmaxExport",
    "build_model",
]

#: Parameters with one row per dictionary class (blank + dictionary): the CTC output layer.
CLASS_LAYERS = ("head.fc.*",)

# (output channel multiplier of ``width``, stride) of the first block of each stage.
_STAGES: tuple[tuple[int, tuple[int, int]], ...] = (
    (2, (1, 1)),
    (4, (2, 2)),
    (8, (2, 1)),
    (8, (2, 1)),
)


class ConvBnAct(nn.Layer):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.hardswish(self.bn(self.conv(x)))


class DepthwiseSeparable(nn.Layer):
    """PP-LCNet's block: 3x3 depthwise conv (carries the stride) then 1x1 pointwise conv."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int]):
        super().__init__()
        self.dw = ConvBnAct(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBnAct(cin, cout, 1, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pw(self.dw(x))


class Backbone(nn.Layer):
    """``[N, 3, H, W]`` -> ``[N, W/4, C]`` with ``C = 8 * width * H/16``: the remaining rows are stacked
    into the features (not averaged), so a column keeps where its strokes are vertically."""

    def __init__(self, width: int, blocks_per_stage: int, height: int):
        super().__init__()
        self.stem = ConvBnAct(3, width, 3, 2)
        blocks: list[nn.Layer] = []
        cin = width
        for mult, stride in _STAGES:
            cout = width * mult
            for i in range(blocks_per_stage):
                blocks.append(DepthwiseSeparable(cin, cout, stride if i == 0 else (1, 1)))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.rows = height // 16
        self.out_channels = cin * self.rows

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        feat = self.stages(self.stem(x))  # [N, C, H/16, W/4]
        return feat.flatten(1, 2).transpose([0, 2, 1])  # [N, T, C * H/16]


class BiLstmNeck(nn.Layer):
    """A bidirectional LSTM beside a linear shortcut. The LSTM's output goes through a zero-initialised
    projection, so training starts as a per-column classifier and brings the LSTM in as it learns: a
    plain BiLSTM sits in CTC's all-blank plateau for hundreds of steps on small runs."""

    def __init__(self, cin: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(cin, hidden, num_layers=layers, direction="bidirect")
        zeros = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
        self.mix = nn.Linear(2 * hidden, 2 * hidden, weight_attr=zeros)
        self.shortcut = nn.Linear(cin, 2 * hidden)
        self.out_channels = 2 * hidden

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out, _ = self.lstm(x)
        return self.shortcut(x) + self.mix(out)


class MixerBlock(nn.Layer):
    """Local mixing (depthwise conv over time), global self-attention, then an MLP; all residual."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.local = nn.Conv1D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def _attention(self, x: paddle.Tensor) -> paddle.Tensor:
        dim = x.shape[-1]
        head_dim = dim // self.heads
        qkv = self.qkv(x).reshape([0, 0, 3, self.heads, head_dim]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]  # [N, heads, T, d]
        weights = F.softmax(paddle.matmul(q, k, transpose_y=True) * head_dim**-0.5, axis=-1)
        out = paddle.matmul(weights, v).transpose([0, 2, 1, 3]).reshape([0, 0, dim])
        return self.proj(out)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x + self.local(x.transpose([0, 2, 1])).transpose([0, 2, 1])
        x = x + self._attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MixerNeck(nn.Layer):
    def __init__(self, cin: int, hidden: int, layers: int, heads: int):
        super().__init__()
        self.proj = nn.Linear(cin, hidden)
        self.blocks = nn.Sequential(*[MixerBlock(hidden, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden)
        self.out_channels = hidden

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.norm(self.blocks(self.proj(x)))


class IdentityNeck(nn.Layer):
    def __init__(self, cin: int):
        super().__init__()
        self.out_channels = cin

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x


class CtcHead(nn.Layer):
    def __init__(self, cin: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(self.dropout(x) if self.dropout is not None else x)


class Recognizer(nn.Layer):
    """``[N, 3, H, W]`` images -> CTC logits ``[N, W/4, num_classes]`` (class 0 is the blank)."""

    def __init__(self, opts: ModelOptions, num_classes: int, height: int = 48):
        super().__init__()
        self.backbone = Backbone(opts.width, opts.blocks_per_stage, height)
        cin = self.backbone.out_channels
        if opts.encoder == "bilstm":
            self.neck: nn.Layer = BiLstmNeck(cin, opts.hidden_size, opts.encoder_layers)
        elif opts.encoder == "mixer":
            self.neck = MixerNeck(cin, opts.hidden_size, opts.encoder_layers, opts.heads)
        else:
            self.neck = IdentityNeck(cin)
        self.head = CtcHead(self.neck.out_channels, num_classes, opts.dropout)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.neck(self.backbone(x)))


class SoftmaxExport(nn.Layer):
    """What the inference model computes: per-step class probabilities ``[N, T, C]``."""

    def __init__(self, model: Recognizer):
        super().__init__()
        self.model = model

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.softmax(self.model(x), axis=-1)


def build_model(opts: ModelOptions, num_classes: int, height: int = 48) -> Recognizer:
    return Recognizer(opts, num_classes, height)
