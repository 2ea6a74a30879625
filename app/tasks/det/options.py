"""Typed ``task.options`` of the ``detection`` task, apart from the adapter so that the config loader can
check them without importing Paddle or ppdet (importing Paddle replaces the SIGTERM handler)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.config.typed import limits
from app.errors import ConfigError

__all__ = ["SynthOptions", "DetectionOptions"]


@dataclass
class SynthOptions:
    """Write the synthetic shapes set (app.tasks.det.synth) to ``dataset_dir`` if it is not there yet."""

    n_train: int = field(default=64, metadata=limits(gt=0))
    n_eval: int = field(default=16, metadata=limits(gt=0))
    size: int = field(default=96, metadata=limits(gt=0))
    seed: int = field(default=0, metadata=limits(ge=0))


@dataclass
class DetectionOptions:
    #: A PaddleDetection config file (``_BASE_`` includes are resolved relative to it).
    ppdet_config: str = ""
    #: Overrides TrainDataset/EvalDataset ``dataset_dir``.
    dataset_dir: str | None = None
    #: Overrides both data sets' ``image_dir`` (relative to dataset_dir).
    image_dir: str | None = None
    #: Overrides TrainDataset ``anno_path`` (a COCO json or a VOC list file, relative to dataset_dir).
    train_anno: str | None = None
    #: Overrides EvalDataset ``anno_path`` (a COCO json or a VOC list file, relative to dataset_dir).
    eval_anno: str | None = None
    #: Overrides the config's ``num_classes`` (a new head: warm-start it with init.mode=partial).
    num_classes: int | None = field(default=None, metadata=limits(gt=0))
    #: Generate the synthetic shapes set into dataset_dir when its annotations are missing.
    synthetic: SynthOptions | None = None
    #: Evaluate on at most this many images (None = all).
    max_eval_images: int | None = field(default=None, metadata=limits(gt=0))
    #: Raw ppdet keys merged over the loaded config, e.g. {"LCNet": {"scale": 0.5}}.
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if not self.ppdet_config:
            raise ConfigError(f"{path}.ppdet_config: required (a PaddleDetection config file)")
        if self.num_classes is not None and self.num_classes <= 0:
            raise ConfigError(f"{path}.num_classes: must be > 0, got {self.num_classes}")
