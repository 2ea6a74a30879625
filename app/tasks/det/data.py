"""COCO records (ppdet's ``COCODataSet``) turned into batches with the config's own ppdet transforms.

No DataLoader and no worker processes: the shared loop asks for a list of indices and gets one batch.
Random augmentations in ppdet's operators draw from Python's and NumPy's global generators, which the
trainer checkpoints, so a resumed run sees the same augmented batches as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from app.errors import TaskError

__all__ = ["DatasetPaths", "load_records", "Pipeline", "to_tensors"]

log = logging.getLogger(__name__)


@dataclass
class DatasetPaths:
    """Overrides for a ppdet ``COCODataSet`` (None keeps the value from the ppdet config)."""

    dataset_dir: str | None = None
    image_dir: str | None = None
    anno_path: str | None = None


def load_records(dataset: Any, paths: DatasetPaths, role: str) -> tuple[list[dict], str]:
    """Parse a ppdet COCO data set; returns its records and the annotation file's full path."""
    for name in ("dataset_dir", "image_dir", "anno_path"):
        value = getattr(paths, name)
        if value is not None:
            setattr(dataset, name, value)
    anno = Path(dataset.get_anno())
    if not anno.is_file():
        raise TaskError(
            f"{role} annotations {str(anno)!r} do not exist",
            hint="set task.options.dataset_dir / train_anno / eval_anno (or task.options.synthetic)",
        )
    dataset.parse_dataset()
    records = list(dataset.roidbs)
    if not records:
        raise TaskError(f"{role} annotations {str(anno)!r} contain no usable images")
    return records, str(anno)


class Pipeline:
    """A ppdet reader section (``sample_transforms`` + ``batch_transforms``) applied to records."""

    def __init__(self, reader: dict[str, Any], num_classes: int) -> None:
        from ppdet.data.reader import BatchCompose, Compose

        self.samples = Compose(reader.get("sample_transforms") or [], num_classes=num_classes)
        self.batch = BatchCompose(reader.get("batch_transforms") or [], num_classes, collate_batch=True)

    def __call__(self, records: list[dict]) -> dict[str, np.ndarray]:
        return self.batch([self.samples(copy.deepcopy(r)) for r in records])


def to_tensors(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
