"""PaddleOCR-format recognition data: label files, the wheel's image/label ops, and augmentation.

A label file has one ``image_path<TAB>text`` line per sample, paths relative to ``data_dir`` (PaddleOCR's
``SimpleDataSet`` layout). Per sample: read the bytes -> the wheel's ``DecodeImage`` (BGR, as
``cv2.imread`` gives the predictor) -> optional augmentation -> ``RecResizeImg`` (resize to H keeping the
aspect ratio, scale to [-1, 1], right-pad to W) and, for labels, ``CTCLabelEncode``.

Labels the encoder rejects (longer than ``max_text_length`` or with no dictionary character) are dropped
when the files are read, so a dataset's size and order never depend on a random draw (PaddleOCR instead
picks a random replacement sample at load time). Augmentation draws only from Python's and NumPy's global
RNGs, which every checkpoint saves, so an exact resume reproduces it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.errors import TaskError
from app.tasks.ocr.options import AugmentOptions
from app.tasks.ocr.wheel import ppocr_module

__all__ = ["LineSet", "read_label_files", "load_image", "Preprocess", "Augmenter"]

log = logging.getLogger(__name__)


@dataclass
class LineSet:
    """Image paths, texts and their encoded CTC labels (padded with 0 = blank) and lengths."""

    paths: list[Path]
    texts: list[str]
    labels: np.ndarray  # [N, max_text_length] int32
    lengths: np.ndarray  # [N] int64
    ratios: np.ndarray | None = None  # [N] float64 w / h from the label lines (PaddleOCR's ds_width)

    def __len__(self) -> int:
        return len(self.paths)


def _resolve(data_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else data_dir / path


def _size_columns(text: str, where: str) -> tuple[str, float]:
    """``text<TAB>w<TAB>h`` (a ds_width label line after the image path) -> (text, w / h)."""
    parts = text.rsplit("\t", 2)
    try:
        width, height = float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        width = height = 0.0
    if width <= 0 or height <= 0:
        raise TaskError(
            f"{where}: expected 'image_path<TAB>text<TAB>width<TAB>height' (ds_width), got {text[:60]!r}",
            hint="add each image's width and height to the label lines, or set ds_width false",
        )
    return parts[0], width / height


def _parse(label_file: Path, data_dir: Path) -> list[tuple[Path, str]]:
    if not label_file.is_file():
        raise TaskError(f"label file {label_file} does not exist", hint="check task.options.data_dir")
    rows = []
    for n, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, text = line.partition("\t")
        if not sep:
            raise TaskError(f"{label_file}:{n}: expected 'image_path<TAB>text', got {line[:60]!r}")
        rows.append((_resolve(data_dir, name), text))
    return rows


def read_label_files(data_dir: Path, files: list[str], encoder, sizes: bool = False) -> LineSet:
    """All samples of ``files`` whose label encodes; missing images are a TaskError naming the first.
    ``sizes``: the lines end with the image's width and height (PaddleOCR's ds_width layout)."""
    paths, texts, labels, lengths, ratios = [], [], [], [], []
    dropped = 0
    for name in files:
        for n, (path, text) in enumerate(_parse(_resolve(data_dir, name), data_dir), 1):
            if sizes:
                text, ratio = _size_columns(text, f"{name}: entry {n}")
                ratios.append(ratio)
            encoded = encoder({"label": text})
            if encoded is None:
                dropped += 1
                ratios = ratios[: len(paths)]
                continue
            if not path.is_file():
                raise TaskError(f"image {path} (listed in {name}) does not exist")
            paths.append(path)
            texts.append(text)
            labels.append(encoded["label"].astype("int32"))
            lengths.append(int(encoded["length"]))
    if dropped:
        log.warning("dropped %d labels of %s: too long or no dictionary character", dropped, files)
    if not paths:
        raise TaskError(f"no usable samples in {files} under {data_dir}")
    kept_ratios = np.asarray(ratios, dtype="float64") if sizes else None
    return LineSet(paths, texts, np.stack(labels), np.asarray(lengths, dtype="int64"), kept_ratios)


def load_image(path: Path) -> np.ndarray:
    """BGR uint8 ``[H, W, 3]`` through the wheel's ``DecodeImage`` (what ``cv2.imread`` returns)."""
    ops = ppocr_module("ppocr.data.imaug.operators")
    data = ops.DecodeImage(img_mode="BGR")({"image": path.read_bytes()})
    if data is None:
        raise TaskError(f"image {path} cannot be decoded")
    return data["image"]


class Preprocess:
    """The wheel's ``RecResizeImg``: ``[3, H, W]`` float32 in [-1, 1], right-padded with 0."""

    def __init__(self, image_shape: list[int]) -> None:
        imaug = ppocr_module("ppocr.data.imaug")
        self.op = imaug.RecResizeImg(image_shape=list(image_shape))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.with_ratio(image)[0]

    def with_ratio(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The image and its ``valid_ratio`` (resized width / W, at most 1), which the SAR branch masks by."""
        out = self.op({"image": image})
        return out["image"].astype("float32"), float(out["valid_ratio"])


class Augmenter:
    """Slight rotation (ours) then the wheel's ``BaseDataAugmentation`` (crop, blur, HSV, jitter, noise,
    inversion); every random draw comes from the global ``random`` / ``np.random`` generators."""

    def __init__(self, opts: AugmentOptions) -> None:
        self.opts = opts
        imaug = ppocr_module("ppocr.data.imaug")
        self.base = imaug.BaseDataAugmentation(
            crop_prob=opts.crop_prob,
            reverse_prob=opts.reverse_prob,
            noise_prob=opts.noise_prob,
            jitter_prob=opts.jitter_prob,
            blur_prob=opts.blur_prob,
            hsv_aug_prob=opts.hsv_prob,
        )

    def _rotate(self, image: np.ndarray) -> np.ndarray:
        angle = float(np.random.uniform(-self.opts.max_angle, self.opts.max_angle))
        h, w = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
        return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if np.random.random() < self.opts.rotate_prob:
            image = self._rotate(image)
        return self.base({"image": np.ascontiguousarray(image)})["image"]
