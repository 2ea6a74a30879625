"""PaddleOCR's PP-OCRv4 / PP-OCRv3 training transforms from the paddleocr wheel, seeded per sample.

The ``Train.dataset.transforms`` of ``ch_PP-OCRv4_rec.yml`` are ``DecodeImage`` -> ``RecConAug`` ->
``RecAug`` -> ``MultiLabelEncode`` (CTC + NRTR labels) -> (``MultiScaleDataSet``) resize to the batch's
scale, scale to [-1, 1] and right-pad, with ``valid_ratio``. Every op here is the wheel's own
(``ppocr.data.imaug``, and ``MultiScaleDataSet.resize_norm_img``, which uses no instance state).
``ch_PP-OCRv3_rec.yml`` has the same ops with ``MultiLabelEncode`` giving SAR labels (``gtc="sar"``) and
``RecResizeImg`` to ``[3, 48, 320]``; for 3-channel images ``resize_norm_img`` with that width and height
is the same arithmetic as ``RecResizeImg`` (aspect-preserving resize, right-pad, ``valid_ratio``).

Those ops draw from Python's ``random`` and NumPy's global generator. Each sample runs under
:func:`app.train.rng.seeded` (generators seeded from ``(seed, epoch, index)``, the previous global states
put back afterwards, as every task's augmentation), so a sample's augmentation (including which other
lines ``RecConAug`` concatenates) depends only on those three numbers: any batch at any step is
reproducible, before or after a resume, in any order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import TaskError
from app.tasks.ocr.options import RecAugOptions, RecConAugOptions
from app.tasks.ocr.wheel import ppocr_module
from app.train import rng

__all__ = ["PPOCRv4Pipeline", "train_batch", "collate", "GTC_KEYS"]

#: Guidance-branch label key of MultiLabelEncode's output per guidance head.
GTC_KEYS = {"nrtr": "label_gtc", "sar": "label_sar"}

log = logging.getLogger(__name__)


class PPOCRv4Pipeline:
    """One training sample as PaddleOCR's MultiScaleDataSet builds it, from the wheel's ops."""

    def __init__(
        self,
        paths: list[Path],
        texts: list[str],
        dict_path: Path,
        max_text_length: int,
        use_space_char: bool,
        rec_aug: RecAugOptions | None,
        rec_con_aug: RecConAugOptions | None,
        gtc: str = "nrtr",
        random_retry: bool = False,
    ) -> None:
        if len(paths) != len(texts) or not paths:
            raise TaskError(f"PP-OCRv4 pipeline: {len(paths)} images for {len(texts)} labels")
        imaug = ppocr_module("ppocr.data.imaug")
        labels = ppocr_module("ppocr.data.imaug.label_ops")
        self.paths, self.texts = paths, texts
        self.random_retry = random_retry
        self.decode = imaug.DecodeImage(img_mode="BGR", channel_first=False)
        self.rec_aug = imaug.RecAug(**vars(rec_aug)) if rec_aug else None
        self.con = rec_con_aug
        self.rec_con_aug = (
            imaug.RecConAug(
                prob=rec_con_aug.prob,
                ext_data_num=rec_con_aug.ext_data_num,
                image_shape=list(rec_con_aug.image_shape),
                max_text_length=max_text_length,
            )
            if rec_con_aug
            else None
        )
        self.encode = labels.MultiLabelEncode(
            max_text_length=max_text_length,
            character_dict_path=str(dict_path),
            use_space_char=use_space_char,
            gtc_encode="NRTRLabelEncode" if gtc == "nrtr" else None,  # None: the wheel's SARLabelEncode
        )
        self.resize = ppocr_module("ppocr.data.simple_dataset").MultiScaleDataSet.resize_norm_img

    def _decoded(self, index: int) -> dict[str, Any]:
        data = self.decode({"image": self.paths[index].read_bytes(), "label": self.texts[index]})
        if data is None:
            raise TaskError(f"image {self.paths[index]} cannot be decoded")
        return data

    def _ext_data(self) -> list[dict[str, Any]]:
        """Other lines for RecConAug, drawn like PaddleOCR's ``get_ext_data`` (``np.random.randint``)."""
        assert self.con is not None
        return [self._decoded(int(np.random.randint(len(self.paths)))) for _ in range(self.con.ext_data_num)]

    def __call__(self, index: int, width: int, height: int, seed: int, epoch: int) -> dict[str, Any]:
        """``image`` [3, height, width] float32, ``label_ctc``, ``label_gtc`` (NRTR) or ``label_sar``,
        ``length``, ``valid_ratio``.

        A sample whose label does not encode is replaced as PaddleOCR does: by the next index
        (``MultiScaleDataSet``), or with ``random_retry`` by random ones (``SimpleDataSet`` in training),
        drawn from a generator seeded by ``(seed, epoch, index)`` so the choice is reproducible."""
        n = len(self.paths)
        retry = np.random.default_rng([seed, epoch, index % n, 7]) if self.random_retry else None
        for _ in range(4 * n if retry is not None else n):
            out = self.sample(index, width, height, seed, epoch)
            if out is not None:
                return out
            index = int(retry.integers(n)) if retry is not None else index + 1
        raise TaskError("no training line encodes with the dictionary and max_text_length")

    def sample(self, index: int, width: int, height: int, seed: int, epoch: int) -> dict[str, Any] | None:
        """One sample, or None when the (possibly concatenated) label does not encode."""
        index %= len(self.paths)
        with rng.seeded(seed, epoch, index):
            data = self._decoded(index)
            if self.rec_con_aug is not None:
                data["ext_data"] = self._ext_data()
                data = self.rec_con_aug(data)
                data.pop("ext_data", None)
            if self.rec_aug is not None:
                data = self.rec_aug(data)
            data = self.encode(data)
        if data is None:
            return None
        return self.resize(None, data, width, height)


def train_batch(
    pipeline: PPOCRv4Pipeline, width: int, height: int, indices: tuple[int, ...], seed: int, epoch: int
) -> dict[str, np.ndarray]:
    """One collated batch of a :class:`app.tasks.ocr.multiscale.ScaleBatch`."""
    return collate([pipeline(i, width, height, seed, epoch) for i in indices])


def collate(samples: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Stack a batch's samples (PaddleOCR's ``KeepKeys`` order: image, label_ctc, label_gtc or label_sar,
    length, valid_ratio)."""
    gtc = "label_sar" if "label_sar" in samples[0] else "label_gtc"
    return {
        "image": np.stack([s["image"] for s in samples]).astype("float32"),
        "label_ctc": np.stack([s["label_ctc"] for s in samples]).astype("int64"),
        gtc: np.stack([s[gtc] for s in samples]).astype("int64"),
        "length": np.asarray([s["length"] for s in samples], dtype="int64"),
        "valid_ratio": np.asarray([s["valid_ratio"] for s in samples], dtype="float32"),
    }
