"""Run an exported recognizer with the paddleocr wheel's own ``tools/infer/predict_rec.TextRecognizer``.

The settings come from the ``predictor.json`` that :meth:`OcrRecTask.export` writes, so this is the same
as running ``python tools/infer/predict_rec.py --rec_model_dir DIR --rec_algorithm CRNN
--rec_image_shape 3,48,320 --rec_char_dict_path DIR/dict.txt --use_gpu false --image_dir IMAGES``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2

from app.errors import TaskError
from app.tasks.ocr.wheel import ppocr_module

__all__ = ["predictor_args", "text_recognizer", "predict_files"]


def predictor_args(export_dir: Path, use_gpu: bool = False) -> Any:
    """The wheel's own argument namespace (its defaults) with the export's settings filled in."""
    settings_file = export_dir / "predictor.json"
    if not settings_file.is_file():
        raise TaskError(
            f"{settings_file} does not exist", hint="run `warmstart export` for an ocr_rec config"
        )
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    utility = ppocr_module("tools.infer.utility")
    args = utility.init_args().parse_args([])
    args.rec_model_dir = str(export_dir)
    args.rec_algorithm = settings["rec_algorithm"]
    args.rec_image_shape = settings["rec_image_shape"]
    args.rec_char_dict_path = str(export_dir / settings["rec_char_dict_path"])
    args.use_space_char = bool(settings["use_space_char"])
    args.use_gpu = use_gpu
    args.enable_mkldnn = False
    args.show_log = False
    return args


def text_recognizer(export_dir: Path, use_gpu: bool = False) -> Any:
    predict_rec = ppocr_module("tools.infer.predict_rec")
    return predict_rec.TextRecognizer(predictor_args(export_dir, use_gpu))


def predict_files(export_dir: Path, paths: list[Path], use_gpu: bool = False) -> list[tuple[str, float]]:
    """(text, confidence) per image, read with ``cv2.imread`` as the predictor's own ``main`` does."""
    recognizer = text_recognizer(export_dir, use_gpu)
    images = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            raise TaskError(f"image {path} cannot be read")
        images.append(image)
    results, _ = recognizer(images)
    return [(str(text), float(conf)) for text, conf in results]
