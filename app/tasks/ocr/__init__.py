"""OCR text recognition (``task.kind: ocr_rec``): a CRNN-class recognizer written here, trained on
PaddleOCR-format data with the paddleocr wheel's data ops, dictionaries and CTC decoding, exported for
the wheel's own ``tools/infer/predict_rec`` predictor. See docs/ocr.md."""

__all__ = ["OcrRecTask"]


def __getattr__(name: str):  # lazy: importing the package must not import paddle
    if name == "OcrRecTask":
        from app.tasks.ocr.task import OcrRecTask

        return OcrRecTask
    raise AttributeError(name)
