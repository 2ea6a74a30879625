"""CTC + NRTR labels for ``svtr_lcnet`` training (or CTC + SAR for PP-OCRv3), from the paddleocr wheel's
own ``MultiLabelEncode`` (``gtc_encode: NRTRLabelEncode``; none for SAR), as PaddleOCR's configs encode them.

* CTC label: character indices + 1 (0 is the blank), padded with 0 to ``max_text_length``;
* NRTR label: ``[2 (<s>), index + 4 ..., 3 (</s>)]`` padded with 0 to ``max_text_length``
  (0 blank, 1 ``<unk>``, 2 ``<s>``, 3 ``</s>``); texts of ``max_text_length - 1`` characters or more are
  dropped, as upstream does;
* SAR label (PP-OCRv3): ``[start, index ..., start, pad ...]`` with ``start = len(dict) + 1`` (the CTC
  class count; ``<BOS/EOS>``), ``pad = len(dict) + 2`` (``<PAD>``), ``<UKN> = len(dict)``; the same
  length rule;
* ``length``: the CTC label's length (PaddleOCR's ``length`` for both losses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.tasks.ocr.wheel import ppocr_module

__all__ = ["MultiLabels"]


class MultiLabels:
    """Callable like the wheel's ``CTCLabelEncode`` (``{"label": text}`` -> ``{"label", "length"}`` or
    None), so :func:`app.tasks.ocr.data.read_label_files` drops every text either label cannot hold; the
    NRTR labels come from :meth:`nrtr`."""

    def __init__(
        self, dict_path: Path, max_text_length: int, use_space_char: bool, gtc: str = "nrtr"
    ) -> None:
        if gtc not in ("nrtr", "sar"):
            raise ValueError(f"gtc must be 'nrtr' or 'sar', got {gtc!r}")
        ops = ppocr_module("ppocr.data.imaug.label_ops")
        self.encode = ops.MultiLabelEncode(
            max_text_length=max_text_length,
            character_dict_path=str(dict_path),
            use_space_char=use_space_char,
            gtc_encode="NRTRLabelEncode" if gtc == "nrtr" else None,
        )
        self.gtc_key = "label_gtc" if gtc == "nrtr" else "label_sar"
        self.character = self.encode.ctc_encode.character

    def _both(self, text: str) -> dict | None:
        return self.encode({"label": text, "image": None})

    def __call__(self, data: dict) -> dict | None:
        out = self._both(data["label"])
        if out is None:
            return None
        return {"label": np.asarray(out["label_ctc"]), "length": out["length"]}

    def gtc(self, texts: list[str]) -> np.ndarray:
        """``[N, max_text_length]`` int64 guidance-branch labels (NRTR or SAR) of texts that encoded
        through ``__call__``."""
        rows = []
        for text in texts:
            out = self._both(text)
            if out is None:
                raise ValueError(f"text {text!r} has no {self.gtc_key} (it was kept by the CTC filter)")
            rows.append(np.asarray(out[self.gtc_key], dtype="int64"))
        return np.stack(rows)

    #: The NRTR labels (PP-OCRv4), as the task calls them.
    nrtr = gtc
