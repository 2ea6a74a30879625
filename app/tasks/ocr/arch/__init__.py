"""PaddleOCR's own recognition architectures, written here and compatible with PaddleOCR checkpoints by
parameter names and shapes: PP-OCRv4 mobile (``SVTR_LCNet``: PPLCNetV3 + MultiHead CTC/NRTR)."""

from app.tasks.ocr.arch.model import SvtrLcnetConfig, SvtrLcnetRecognizer, multi_loss

__all__ = ["SvtrLcnetConfig", "SvtrLcnetRecognizer", "multi_loss"]
