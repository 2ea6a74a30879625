"""A deterministic synthetic detection set: coloured shapes on textured backgrounds, written as COCO.

``write_shapes(out_dir, n_train, n_eval, size, seed)`` writes ``images/*.png``, ``train.json`` and
``eval.json`` (valid COCO with ``info``, ``licenses``, ``images``, ``annotations``, ``categories``). The
same arguments always give the same bytes. Three categories: rectangle, ellipse, triangle; each image has
1-3 objects that do not overlap much, so a small detector can learn them in a few hundred steps.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

__all__ = ["CATEGORIES", "write_shapes", "draw_image"]

log = logging.getLogger(__name__)

CATEGORIES = ["rectangle", "ellipse", "triangle"]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-contrast noise plus stripes, so boxes are not found by colour alone."""
    base = rng.integers(60, 190, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    period = rng.uniform(6, 20)
    stripes = 14 * np.sin((xx * rng.uniform(-1, 1) + yy) / period)[..., None]
    return np.clip(base + noise + stripes, 0, 255).astype(np.uint8)


def _free_box(rng: np.random.Generator, size: int, boxes: list[list[float]]) -> list[float] | None:
    for _ in range(20):
        w, h = rng.integers(size // 6, size // 2, size=2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        box = [float(x), float(y), float(w), float(h)]
        if all(_iou(box, other) < 0.1 for other in boxes):
            return box
    return None


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _draw(img: np.ndarray, kind: int, box: list[float], color: tuple[int, int, int]) -> None:
    x, y, w, h = (int(v) for v in box)
    if kind == 0:
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, thickness=-1)
    elif kind == 1:
        cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, color, thickness=-1)
    else:
        pts = np.array([[x + w // 2, y], [x, y + h - 1], [x + w - 1, y + h - 1]], dtype=np.int32)
        cv2.fillPoly(img, [pts], color)


def draw_image(
    seed: int, size: int, max_objects: int = 3
) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """One BGR image and its objects ``[(category index, [x, y, w, h]), ...]``, a pure function of seed."""
    rng = np.random.default_rng(seed)
    img = _background(rng, size)
    objects: list[tuple[int, list[float]]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        box = _free_box(rng, size, [b for _, b in objects])
        if box is None:
            continue
        kind = int(rng.integers(0, len(CATEGORIES)))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        _draw(img, kind, box, color)
        objects.append((kind, box))
    return img, objects


def _split(out: Path, name: str, first_id: int, count: int, size: int, seed: int) -> dict:
    images, annotations = [], []
    for i in range(count):
        image_id = first_id + i
        img, objects = draw_image(seed * 1_000_003 + image_id, size)
        file_name = f"{name}_{image_id:05d}.png"
        cv2.imwrite(str(out / "images" / file_name), img)
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for kind, box in objects:
            annotations.append({
                "id": len(annotations) + 1 + first_id * 10, "image_id": image_id, "category_id": kind + 1,
                "bbox": box, "area": box[2] * box[3], "iscrowd": 0,
            })  # fmt: skip
    return {
        "info": {"description": f"warmstart synthetic shapes ({name})", "version": "1"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CATEGORIES)],
    }


def write_shapes(
    out_dir: str | Path, n_train: int = 64, n_eval: int = 16, size: int = 96, seed: int = 0
) -> Path:
    """Write the data set under ``out_dir`` (``images/``, ``train.json``, ``eval.json``); returns it."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for name, first, count in (("train", 1, n_train), ("eval", 100_001, n_eval)):
        coco = _split(out, name, first, count, size, seed)
        (out / f"{name}.json").write_text(json.dumps(coco, indent=1))
    log.info("wrote %d train / %d eval synthetic images (%d px) to %s", n_train, n_eval, size, out)
    return out
