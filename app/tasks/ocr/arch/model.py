"""PP-OCRv4 mobile recognition (PaddleOCR ``algorithm: SVTR_LCNet``): ``PPLCNetV3`` + ``MultiHead`` and its
``MultiLoss`` (CTC + NRTR), with PaddleOCR 2.8's parameter names and shapes.

``SvtrLcnetRecognizer(images)`` in eval mode returns what PaddleOCR's model returns at inference: CTC
probabilities ``[N, T, ctc_classes]`` (softmax). In training mode it needs the NRTR labels too and returns
``{"ctc": logits, "ctc_neck": features, "nrtr": logits}``, the input of :func:`multi_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from app.tasks.ocr.arch.lcnetv3 import PPLCNetV3
from app.tasks.ocr.arch.nrtr import BeforeGtc, NrtrDecoder
from app.tasks.ocr.arch.svtr_neck import ctc_branch

__all__ = [
    "CLASS_LAYERS",
    "SvtrLcnetConfig",
    "MultiHead",
    "SvtrLcnetRecognizer",
    "ctc_loss",
    "nrtr_loss",
    "multi_loss",
]

#: Parameters with one row per dictionary class: the CTC output layer, the NRTR embedding and projection.
CLASS_LAYERS = (
    "head.ctc_head.fc.*",
    "head.gtc_head.embedding.embedding.weight",
    "head.gtc_head.tgt_word_prj.weight",
)


@dataclass(frozen=True)
class SvtrLcnetConfig:
    """The ``ch_PP-OCRv4_rec.yml`` architecture; class counts come from the dictionary (CTC: dictionary +
    blank; NRTR: dictionary + blank, ``<unk>``, ``<s>``, ``</s>`` = ctc_classes + 3)."""

    ctc_classes: int
    scale: float = 0.95
    dims: int = 120
    depth: int = 2
    hidden_dims: int = 120
    kernel_size: tuple[int, int] = (1, 3)
    use_guide: bool = True
    fc_decay: float = 1e-5
    nrtr_dim: int = 384
    max_text_length: int = 25
    weight_ctc: float = 1.0
    weight_nrtr: float = 1.0

    @property
    def nrtr_classes(self) -> int:
        return self.ctc_classes + 3


class MultiHead(nn.Layer):
    def __init__(self, cin: int, cfg: SvtrLcnetConfig) -> None:
        super().__init__()
        self.before_gtc = BeforeGtc(cin, cfg.nrtr_dim)
        self.gtc_head = NrtrDecoder(cfg.nrtr_classes, cfg.nrtr_dim, max_len=cfg.max_text_length)
        self.ctc_encoder, self.ctc_head = ctc_branch(cin, cfg)

    def forward(
        self, x: paddle.Tensor, nrtr_labels: paddle.Tensor | None = None, lengths: paddle.Tensor | None = None
    ) -> paddle.Tensor | dict[str, paddle.Tensor]:
        features = self.ctc_encoder(x)
        ctc = self.ctc_head(features)
        if not self.training:
            return ctc
        if nrtr_labels is None or lengths is None:
            raise ValueError("MultiHead in training mode needs the NRTR labels and the label lengths")
        nrtr = self.gtc_head(self.before_gtc(x), nrtr_labels, lengths)
        return {"ctc": ctc, "ctc_neck": features, "nrtr": nrtr}


class SvtrLcnetRecognizer(nn.Layer):
    """``backbone`` (PPLCNetV3) + ``head`` (MultiHead); no separate neck, as in PaddleOCR's config."""

    def __init__(self, cfg: SvtrLcnetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = PPLCNetV3(cfg.scale)
        self.head = MultiHead(self.backbone.out_channels, cfg)

    def forward(
        self, x: paddle.Tensor, nrtr_labels: paddle.Tensor | None = None, lengths: paddle.Tensor | None = None
    ) -> paddle.Tensor | dict[str, paddle.Tensor]:
        return self.head(self.backbone(x), nrtr_labels, lengths)

    def reparameterize(self) -> None:
        """Fold the backbone's re-parameterisable blocks into single convs (inference form)."""
        self.backbone.reparameterize()


def ctc_loss(logits: paddle.Tensor, labels: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
    """PaddleOCR's ``CTCLoss``: blank 0, all T steps, per-sample loss (no length normalisation), mean."""
    logits = logits.transpose([1, 0, 2])  # [T, N, C]
    steps = paddle.full([logits.shape[1]], logits.shape[0], dtype="int64")
    per_sample = F.ctc_loss(logits, labels.astype("int32"), steps, lengths.astype("int64"), reduction="none")
    return per_sample.mean()


def nrtr_loss(logits: paddle.Tensor, labels: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
    """PaddleOCR's ``NRTRLoss`` with label smoothing 0.1 (the off-target mass spread over the other
    ``classes - 1``), averaged over the non-padding target tokens."""
    target = labels[:, 1 : 2 + int(lengths.max())].reshape([-1])
    logits = logits.reshape([-1, logits.shape[2]])
    n_class = logits.shape[1]
    one_hot = F.one_hot(target, n_class)
    smooth = one_hot * (1 - 0.1) + (1 - one_hot) * 0.1 / (n_class - 1)
    per_token = -(smooth * F.log_softmax(logits, axis=1)).sum(axis=1)
    keep = paddle.not_equal(target, paddle.zeros(target.shape, dtype=target.dtype))
    return per_token.masked_select(keep).mean()


def multi_loss(
    out: dict[str, paddle.Tensor],
    ctc_labels: paddle.Tensor,
    nrtr_labels: paddle.Tensor,
    lengths: paddle.Tensor,
    cfg: SvtrLcnetConfig,
) -> dict[str, paddle.Tensor]:
    """PaddleOCR's ``MultiLoss`` for ``[CTCLoss, NRTRLoss]``: ``weight_1 * ctc + weight_2 * nrtr``."""
    ctc = ctc_loss(out["ctc"].astype("float32"), ctc_labels, lengths) * cfg.weight_ctc
    nrtr = nrtr_loss(out["nrtr"].astype("float32"), nrtr_labels, lengths) * cfg.weight_nrtr
    return {"CTCLoss": ctc, "NRTRLoss": nrtr, "loss": ctc + nrtr}
