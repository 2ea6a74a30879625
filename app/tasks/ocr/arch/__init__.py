"""PaddleOCR's own recognition architectures, written here and compatible with PaddleOCR checkpoints by
parameter names and shapes: PP-OCRv4 mobile (``SVTR_LCNet``: PPLCNetV3 + MultiHead CTC/NRTR) and PP-OCRv3
mobile (MobileNetV1Enhance + MultiHead CTC/SAR, ``model.algorithm: svtr_mv1e``)."""

from app.tasks.ocr.arch.model import SvtrLcnetConfig, SvtrLcnetRecognizer, multi_loss
from app.tasks.ocr.arch.model_v3 import SvtrMv1eConfig, SvtrMv1eRecognizer, multi_loss_sar

__all__ = [
    "SvtrLcnetConfig",
    "SvtrLcnetRecognizer",
    "multi_loss",
    "SvtrMv1eConfig",
    "SvtrMv1eRecognizer",
    "multi_loss_sar",
]
