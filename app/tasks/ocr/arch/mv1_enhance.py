"""MobileNetV1Enhance, the backbone of PaddleOCR's PP-OCRv3 mobile recognizer, written here from its
description. Parameter names follow PaddleOCR release 2.8 (``Backbone: {name: MobileNetV1Enhance,
scale: 0.5, last_conv_stride: [1, 2], last_pool_type: avg, last_pool_kernel_size: [2, 2]}``):

* ``conv1``: 3x3 stride-2 conv + BatchNorm + hardswish (``_conv``, ``_batch_norm``);
* ``block_list.{0..12}``: depthwise-separable blocks, a depthwise ``_depthwise_conv`` (conv + BN +
  hardswish), an optional squeeze-excite ``_se`` (blocks 11, 12) and a pointwise ``_pointwise_conv``;
  strides (2, 1) at blocks 3, 5 and 11 halve the height only, block 12 takes ``last_conv_stride``;
* a final pool: ``avg`` with kernel = stride = ``last_pool_kernel_size``, or ``max`` 2 x 2 (stride 2,
  whatever the kernel size says, as upstream): a 48 x 320 line becomes ``[N, 1024 * scale, 1, 40]``.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal
from paddle.regularizer import L2Decay

__all__ = ["MobileNetV1Enhance", "MV1E_BLOCKS"]

#: Per block at scale 1.0: (depthwise channels, output channels, stride, depthwise kernel, squeeze-excite);
#: ``None`` as the stride of the last block means ``last_conv_stride``.
MV1E_BLOCKS: list[tuple[int, int, int | tuple[int, int] | None, int, bool]] = [
    (32, 64, 1, 3, False),
    (64, 128, 1, 3, False),
    (128, 128, 1, 3, False),
    (128, 256, (2, 1), 3, False),
    (256, 256, 1, 3, False),
    (256, 512, (2, 1), 3, False),
    *[(512, 512, 1, 5, False)] * 5,
    (512, 1024, (2, 1), 5, True),
    (1024, 1024, None, 5, True),
]


class ConvBNHardswish(nn.Layer):
    """Conv (no bias, Kaiming-normal) + BatchNorm (affine exempt from L2 decay) + hardswish."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: object, padding: int, groups: int = 1
    ) -> None:
        super().__init__()
        attr = ParamAttr(initializer=KaimingNormal())
        self._conv = nn.Conv2D(
            cin, cout, kernel, stride, padding, groups=groups, weight_attr=attr, bias_attr=False
        )
        self._batch_norm = nn.BatchNorm2D(
            cout,
            weight_attr=ParamAttr(regularizer=L2Decay(0.0)),
            bias_attr=ParamAttr(regularizer=L2Decay(0.0)),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.hardswish(self._batch_norm(self._conv(x)))


class SqueezeExcite(nn.Layer):
    """Global average pool -> 1x1 conv (C/4) -> ReLU -> 1x1 conv (C) -> hardsigmoid, times the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // 4, 1)
        self.conv2 = nn.Conv2D(channels // 4, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        w = F.hardsigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))))
        return paddle.multiply(x, w)


class DepthwiseSeparable(nn.Layer):
    def __init__(self, cin: int, dw: int, cout: int, stride: object, kernel: int, use_se: bool) -> None:
        super().__init__()
        self._depthwise_conv = ConvBNHardswish(cin, dw, kernel, stride, kernel // 2, groups=dw)
        self._se = SqueezeExcite(dw) if use_se else None
        self._pointwise_conv = ConvBNHardswish(dw, cout, 1, 1, 0)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self._depthwise_conv(x)
        if self._se is not None:
            x = self._se(x)
        return self._pointwise_conv(x)


class MobileNetV1Enhance(nn.Layer):
    """``[N, 3, H, W]`` -> ``[N, 1024 * scale, H/32, W/(4 * last stride * pool)]`` (PP-OCRv3: 48 x 320 ->
    1 x 40, 512 channels)."""

    def __init__(
        self,
        scale: float = 0.5,
        last_conv_stride: int | tuple[int, int] = 1,
        last_pool_type: str = "max",
        last_pool_kernel_size: tuple[int, int] = (3, 2),
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNHardswish(3, int(32 * scale), 3, 2, 1)
        cin, blocks = int(32 * scale), []
        for dw, cout, stride, kernel, se in MV1E_BLOCKS:
            stride = last_conv_stride if stride is None else stride
            blocks.append(DepthwiseSeparable(cin, int(dw * scale), int(cout * scale), stride, kernel, se))
            cin = int(cout * scale)
        self.block_list = nn.Sequential(*blocks)
        if last_pool_type == "avg":
            kernel = list(last_pool_kernel_size)
            self.pool: nn.Layer = nn.AvgPool2D(kernel_size=kernel, stride=kernel, padding=0)
        else:  # upstream's max pool ignores last_pool_kernel_size
            self.pool = nn.MaxPool2D(kernel_size=2, stride=2, padding=0)
        self.out_channels = int(1024 * scale)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.pool(self.block_list(self.conv1(x)))
