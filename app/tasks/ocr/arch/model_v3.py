"""PP-OCRv3 mobile recognition (PaddleOCR ``algorithm: SVTR_LCNet`` with ``MobileNetV1Enhance``):
``MobileNetV1Enhance`` + ``MultiHead`` (CTC branch with the SVTR neck, SAR guidance branch) and its
``MultiLoss`` (CTC + SAR), with PaddleOCR 2.8's parameter names and shapes (``ch_PP-OCRv3_rec.yml``).

In eval mode the model returns CTC probabilities ``[N, T, ctc_classes]``; in training mode it needs the SAR
labels (and optionally the images' valid width ratios) and returns ``{"ctc", "ctc_neck", "sar"}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn

from app.tasks.ocr.arch.model import ctc_loss
from app.tasks.ocr.arch.mv1_enhance import MobileNetV1Enhance
from app.tasks.ocr.arch.sar import SARHead, sar_loss
from app.tasks.ocr.arch.svtr_neck import ctc_branch

__all__ = ["CLASS_LAYERS", "SvtrMv1eConfig", "SvtrMv1eRecognizer", "multi_loss_sar"]

#: Parameters with one row per dictionary class: the CTC output layer, the SAR embedding and prediction.
CLASS_LAYERS = (
    "head.ctc_head.fc.*",
    "head.sar_head.decoder.embedding.weight",
    "head.sar_head.decoder.prediction.*",
)


@dataclass(frozen=True)
class SvtrMv1eConfig:
    """The ``ch_PP-OCRv3_rec.yml`` architecture; class counts come from the dictionary (CTC: dictionary +
    blank; SAR: dictionary + ``<UKN>``, ``<BOS/EOS>``, ``<PAD>`` = ctc_classes + 2)."""

    ctc_classes: int
    scale: float = 0.5
    last_conv_stride: tuple[int, int] = (1, 2)
    last_pool_type: str = "avg"
    last_pool_kernel_size: tuple[int, int] = (2, 2)
    dims: int = 64
    depth: int = 2
    hidden_dims: int = 120
    kernel_size: tuple[int, int] = (3, 3)
    use_guide: bool = True
    fc_decay: float = 1e-5
    enc_dim: int = 512
    max_text_length: int = 25
    weight_ctc: float = 1.0
    weight_sar: float = 1.0

    @property
    def sar_classes(self) -> int:
        return self.ctc_classes + 2


class MultiHeadSar(nn.Layer):
    def __init__(self, cin: int, cfg: SvtrMv1eConfig) -> None:
        super().__init__()
        self.ctc_encoder, self.ctc_head = ctc_branch(cin, cfg)
        self.sar_head = SARHead(cin, cfg.sar_classes, enc_dim=cfg.enc_dim)

    def forward(
        self,
        x: paddle.Tensor,
        sar_labels: paddle.Tensor | None = None,
        valid_ratios: paddle.Tensor | None = None,
    ) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features = self.ctc_encoder(x)
        ctc = self.ctc_head(features)
        if not self.training:
            return ctc
        if sar_labels is None:
            raise ValueError("MultiHead (SAR) in training mode needs the SAR labels")
        return {"ctc": ctc, "ctc_neck": features, "sar": self.sar_head(x, sar_labels, valid_ratios)}


class SvtrMv1eRecognizer(nn.Layer):
    """``backbone`` (MobileNetV1Enhance) + ``head`` (MultiHead CTC/SAR); no separate neck."""

    def __init__(self, cfg: SvtrMv1eConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = MobileNetV1Enhance(
            cfg.scale, tuple(cfg.last_conv_stride), cfg.last_pool_type, tuple(cfg.last_pool_kernel_size)
        )
        self.head = MultiHeadSar(self.backbone.out_channels, cfg)

    def forward(
        self,
        x: paddle.Tensor,
        sar_labels: paddle.Tensor | None = None,
        valid_ratios: paddle.Tensor | None = None,
    ) -> paddle.Tensor | dict[str, paddle.Tensor]:
        return self.head(self.backbone(x), sar_labels, valid_ratios)


def multi_loss_sar(
    out: dict[str, paddle.Tensor],
    ctc_labels: paddle.Tensor,
    sar_labels: paddle.Tensor,
    lengths: paddle.Tensor,
    cfg: SvtrMv1eConfig,
) -> dict[str, paddle.Tensor]:
    """PaddleOCR's ``MultiLoss`` for ``[CTCLoss, SARLoss]``: ``weight_1 * ctc + weight_2 * sar``."""
    ctc = ctc_loss(out["ctc"].astype("float32"), ctc_labels, lengths) * cfg.weight_ctc
    sar = sar_loss(out["sar"].astype("float32"), sar_labels, cfg.sar_classes) * cfg.weight_sar
    return {"CTCLoss": ctc, "SARLoss": sar, "loss": ctc + sar}
