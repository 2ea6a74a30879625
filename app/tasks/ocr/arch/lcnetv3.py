"""PP-LCNetV3, the backbone of PaddleOCR's PP-OCRv4 mobile recognizer, written here from its description.

Structure and parameter names follow PaddleOCR release 2.8 (``Backbone: {name: PPLCNetV3, scale: 0.95}``)
so a PaddleOCR training checkpoint loads by name:

* ``conv1`` - 3x3 stride-2 conv + BatchNorm, **no activation**;
* ``blocks2`` .. ``blocks6`` - :class:`LCNetV3Block`: a depthwise :class:`RepLayer` (``dw_conv``), an
  optional squeeze-excite (``se``), a pointwise :class:`RepLayer` (``pw_conv``);
* a :class:`RepLayer` sums ``conv_kxk.{0..3}`` (conv+BN branches), ``conv_1x1`` (only when k > 1) and
  ``identity`` (a bare BatchNorm, only when channels are kept and the stride is 1), then applies the
  learnable affine ``lab`` (``scale * x + bias``) and ``act`` (hardswish followed by its own ``lab``);
* the output ``[N, C, H/16, W/4]`` (stride (2,1) twice more in H) is pooled to one row: adaptively to
  ``[1, 40]`` while training, ``avg_pool2d([3, 2])`` (stride = kernel) in eval mode, as upstream.

:meth:`RepLayer.reparameterize` folds every branch into one biased conv (the inference form upstream's
export uses); the folded layer computes the same function up to float rounding.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingNormal
from paddle.regularizer import L2Decay

__all__ = ["PPLCNetV3", "RepLayer", "make_divisible", "REC_STAGES"]

#: Per stage: (kernel, in channels, out channels, stride, squeeze-excite) at scale 1.0 (upstream's
#: recognition table).
REC_STAGES: dict[str, list[tuple[int, int, int, int | tuple[int, int], bool]]] = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 1, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, (2, 1), False), (3, 128, 128, 1, False)],
    "blocks5": [
        (3, 128, 256, (1, 2), False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
        (5, 256, 256, 1, False),
    ],
    "blocks6": [
        (5, 256, 512, (2, 1), True),
        (5, 512, 512, 1, True),
        (5, 512, 512, (2, 1), False),
        (5, 512, 512, 1, False),
    ],
}


def make_divisible(value: float, divisor: int = 16) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never below 90 %."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


class LearnableAffine(nn.Layer):
    """``scale * x + bias`` with two scalar parameters, trained at ``lr_scale`` of the base LR."""

    def __init__(self, lr_scale: float = 0.1) -> None:
        super().__init__()
        attr = ParamAttr(learning_rate=lr_scale)
        self.scale = self.create_parameter([1], attr=attr, default_initializer=Constant(1.0))
        attr = ParamAttr(learning_rate=lr_scale)
        self.bias = self.create_parameter([1], attr=attr, default_initializer=Constant(0.0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.scale * x + self.bias


class ConvBN(nn.Layer):
    """Conv (no bias, Kaiming-normal) + BatchNorm whose affine parameters are exempt from L2 decay."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(
            cin,
            cout,
            kernel,
            stride,
            padding=(kernel - 1) // 2,
            groups=groups,
            weight_attr=ParamAttr(initializer=KaimingNormal()),
            bias_attr=False,
        )
        no_decay = ParamAttr(regularizer=L2Decay(0.0))
        self.bn = nn.BatchNorm2D(cout, weight_attr=no_decay, bias_attr=ParamAttr(regularizer=L2Decay(0.0)))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.bn(self.conv(x))


class HardswishAffine(nn.Layer):
    """Hardswish, then a learnable affine (upstream's ``Act``)."""

    def __init__(self, lr_scale: float) -> None:
        super().__init__()
        self.lab = LearnableAffine(lr_scale)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.lab(F.hardswish(x))


def _fold(kernel: paddle.Tensor, bn: nn.BatchNorm2D) -> tuple[paddle.Tensor, paddle.Tensor]:
    """A conv kernel followed by eval-mode BatchNorm as one kernel and bias."""
    std = (bn._variance + bn._epsilon).sqrt()
    return kernel * (bn.weight / std).reshape([-1, 1, 1, 1]), bn.bias - bn._mean * bn.weight / std


class RepLayer(nn.Layer):
    """Upstream's ``LearnableRepLayer``: the sum of ``branches`` conv+BN paths, a 1x1 conv+BN path (k > 1)
    and a BatchNorm identity path (same channels, stride 1), then ``lab`` and (unless the stride is the
    integer 2) ``act``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int | tuple[int, int] = 1,
        groups: int = 1,
        branches: int = 4,
        lr_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.cin, self.cout, self.kernel, self.stride, self.groups = cin, cout, kernel, stride, groups
        self.identity = nn.BatchNorm2D(cin) if cin == cout and stride == 1 else None
        self.conv_kxk = nn.LayerList([ConvBN(cin, cout, kernel, stride, groups) for _ in range(branches)])
        self.conv_1x1 = ConvBN(cin, cout, 1, stride, groups) if kernel > 1 else None
        self.lab = LearnableAffine(lr_scale)
        self.act = HardswishAffine(lr_scale)
        self.fused: nn.Conv2D | None = None

    def _branches(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.identity(x) if self.identity is not None else None
        if self.conv_1x1 is not None:
            out = self.conv_1x1(x) if out is None else out + self.conv_1x1(x)
        for conv in self.conv_kxk:
            out = conv(x) if out is None else out + conv(x)
        return out

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.lab(self.fused(x) if self.fused is not None else self._branches(x))
        return out if self.stride == 2 else self.act(out)

    @paddle.no_grad()
    def reparameterize(self) -> None:
        """Fold all branches (eval-mode BatchNorm statistics) into one biased conv ``fused``; the
        branch layers are removed."""
        if self.fused is not None:
            return
        kernel, bias = self._folded()
        pad = (self.kernel - 1) // 2
        fused = nn.Conv2D(self.cin, self.cout, self.kernel, self.stride, pad, groups=self.groups)
        fused.weight.set_value(kernel)
        fused.bias.set_value(bias)
        self.fused = fused
        del self.conv_kxk
        self.conv_1x1 = None
        self.identity = None

    def _folded(self) -> tuple[paddle.Tensor, paddle.Tensor]:
        kernel = paddle.zeros([self.cout, self.cin // self.groups, self.kernel, self.kernel])
        bias = paddle.zeros([self.cout])
        for branch in self.conv_kxk:
            k, b = _fold(branch.conv.weight, branch.bn)
            kernel, bias = kernel + k, bias + b
        if self.conv_1x1 is not None:
            k, b = _fold(self.conv_1x1.conv.weight, self.conv_1x1.bn)
            p = self.kernel // 2
            kernel, bias = kernel + F.pad(k, [p, p, p, p]), bias + b
        if self.identity is not None:
            eye = paddle.zeros_like(kernel)
            per_group = self.cin // self.groups
            c = self.kernel // 2
            for i in range(self.cin):
                eye[i, i % per_group, c, c] = 1.0
            k, b = _fold(eye, self.identity)
            kernel, bias = kernel + k, bias + b
        return kernel, bias


class SqueezeExcite(nn.Layer):
    """Global average pool -> 1x1 conv (C/4) -> ReLU -> 1x1 conv (C) -> hardsigmoid, times the input."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        w = F.hardsigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))))
        return paddle.multiply(x, w)


class LCNetV3Block(nn.Layer):
    def __init__(
        self, cin: int, cout: int, stride: int | tuple[int, int], kernel: int, use_se: bool, lr_scale: float
    ) -> None:
        super().__init__()
        self.dw_conv = RepLayer(cin, cin, kernel, stride, groups=cin, lr_scale=lr_scale)
        self.se = SqueezeExcite(cin) if use_se else None
        self.pw_conv = RepLayer(cin, cout, 1, 1, lr_scale=lr_scale)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.dw_conv(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNetV3(nn.Layer):
    """``[N, 3, H, W]`` -> ``[N, C, 1, W/8]`` (eval; 40 columns while training) with
    ``C = make_divisible(512 * scale)`` (480 at scale 0.95)."""

    def __init__(self, scale: float = 0.95, lab_lr: float = 0.1) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, make_divisible(16 * scale), 3, 2)
        for name, rows in REC_STAGES.items():
            blocks = [
                LCNetV3Block(make_divisible(cin * scale), make_divisible(cout * scale), s, k, se, lab_lr)
                for k, cin, cout, s, se in rows
            ]
            setattr(self, name, nn.Sequential(*blocks))
        self.out_channels = make_divisible(512 * scale)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        for name in REC_STAGES:
            x = getattr(self, name)(x)
        if self.training:
            return F.adaptive_avg_pool2d(x, [1, 40])
        return F.avg_pool2d(x, [3, 2])

    def reparameterize(self) -> None:
        for layer in self.sublayers():
            if isinstance(layer, RepLayer):
                layer.reparameterize()
