"""Data set records (built by :mod:`app.tasks.det.datasets`) turned into batches with the config's own
ppdet transforms.

The shared loop asks for a list of indices and gets one batch of numpy arrays (in a data worker process
or in the trainer, :mod:`app.train.batches`). Random augmentations in ppdet's operators draw from
Python's and NumPy's global generators; for training batches they are seeded around each call
(:func:`app.train.rng.seeded`): a sample's transforms from ``(run seed, epoch, sample index)``, the batch
transforms (e.g. ``BatchRandomResize``) from ``(run seed, epoch, first index)``. A batch is therefore the
same in any process and after any resume.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import paddle

from app.train import rng

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

    def seeded(self, records: list[dict], indices: list[int], seed: int, epoch: int) -> dict[str, np.ndarray]:
        """As ``__call__``, each sample's random draws seeded by its index, the batch's by the first index."""
        samples = []
        for index, record in zip(indices, records, strict=True):
            with rng.seeded(seed, epoch, index):
                samples.append(self.samples(copy.deepcopy(record)))
        with rng.seeded(seed, epoch, indices[0], rng.BATCH):
            return self.batch(samples)


def to_tensors(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
