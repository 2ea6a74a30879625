"""Data set records (built by :mod:`app.tasks.det.datasets`) turned into batches with the config's own
ppdet transforms.

No DataLoader and no worker processes: the shared loop asks for a list of indices and gets one batch.
Random augmentations in ppdet's operators draw from Python's and NumPy's global generators, which the
trainer checkpoints, so a resumed run sees the same augmented batches as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import paddle

__all__ = ["Pipeline", "to_tensors"]

log = logging.getLogger(__name__)


class Pipeline:
    """A ppdet reader section (``sample_transforms`` + ``batch_transforms``) applied to records.

    ``collate_batch`` as in ppdet's readers (default true); false keeps per-image ground truth as lists,
    for readers whose images hold different numbers of boxes (VOC evaluation)."""

    def __init__(self, reader: dict[str, Any], num_classes: int) -> None:
        from ppdet.data.reader import BatchCompose, Compose

        self.samples = Compose(reader.get("sample_transforms") or [], num_classes=num_classes)
        self.batch = BatchCompose(
            reader.get("batch_transforms") or [],
            num_classes,
            collate_batch=bool(reader.get("collate_batch", True)),
        )

    def __call__(self, records: list[dict]) -> dict[str, np.ndarray]:
        return self.batch([self.samples(copy.deepcopy(r)) for r in records])


def to_tensors(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
