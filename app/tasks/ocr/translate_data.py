"""PaddleOCR's ``Train`` / ``Eval`` sections of a recognition config, mapped onto ``task.options`` and
``train.batch_size``.

``dataset``: ``SimpleDataSet`` or ``MultiScaleDataSet`` with ``data_dir`` and ``label_file_list`` (label
files are relative to the working directory in PaddleOCR, so they are made absolute here; image paths
inside them stay relative to ``data_dir``). ``transforms``: ``DecodeImage`` (BGR), ``RecConAug``,
``RecAug``, ``CTCLabelEncode`` / ``MultiLabelEncode`` (NRTR, or SAR without ``gtc_encode``; the labels
the task makes follow ``model.algorithm``), ``RecResizeImg`` (``image_shape``),
``KeepKeys``; any other transform is a ConfigError naming these. ``sampler: MultiScaleSampler`` ->
``task.options.multiscale`` (with ``dataset.ds_width`` as its ``ds_width``: label lines then carry
each image's width and height); ``loader.batch_size_per_card`` -> ``train.batch_size`` (Train) /
``task.options.eval_batch_size`` (Eval); ``Train.loader.num_workers`` -> ``train.data_workers`` (loader
worker processes in both; our section wins); ``shuffle``, ``drop_last`` and ``Eval.loader.num_workers``
have our own meaning (seeded shuffle, full batches, evaluation in the trainer) and are ignored with a
warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.config.typed import worker_count
from app.errors import ConfigError
from app.tasks.ocr.translate_arch import mapping

__all__ = ["TRANSFORMS", "dataset_items"]

log = logging.getLogger(__name__)

Item = tuple[str, Any, str]
OPTS = "task.options"
#: Transforms read here (each checked or mapped; see the module docstring).
TRANSFORMS = (
    "DecodeImage",
    "RecConAug",
    "RecAug",
    "CTCLabelEncode",
    "MultiLabelEncode",
    "RecResizeImg",
    "KeepKeys",
)
_REC_AUG_KEYS = (
    "tia_prob",
    "crop_prob",
    "reverse_prob",
    "noise_prob",
    "jitter_prob",
    "blur_prob",
    "hsv_aug_prob",
)
_SAMPLER_KEYS = ("scales", "first_bs", "fix_bs", "divided_factor", "max_w")


def _label_files(files: Any, where: str) -> list[str]:
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files:
        raise ConfigError(f"{where}: expected a list of label files, got {files!r}")
    return [str(Path(f).absolute()) if not Path(f).is_absolute() else str(f) for f in files]


def _transform(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ConfigError(f"{where}: expected {{TransformName: settings}}, got {entry!r}")
    ((name, settings),) = entry.items()
    return name, mapping(settings, f"{where}.{name}")


def _transform_items(name: str, settings: dict[str, Any], where: str, train: bool) -> list[Item]:
    if name not in TRANSFORMS:
        raise ConfigError(f"{where}: {name} is not supported (supported transforms: {', '.join(TRANSFORMS)})")
    if name == "DecodeImage" and settings.get("img_mode", "RGB") != "BGR":
        raise ConfigError(f"{where}.img_mode: only BGR (what the predictor feeds) is supported")
    if name == "MultiLabelEncode" and settings.get("gtc_encode") not in (None, "NRTRLabelEncode"):
        raise ConfigError(
            f"{where}.gtc_encode: only NRTRLabelEncode is supported, got {settings['gtc_encode']!r}"
        )
    if name == "RecResizeImg" and "image_shape" in settings:
        return [(f"{OPTS}.image_shape", list(settings["image_shape"]), f"{where}.image_shape")]
    if not train or name not in ("RecAug", "RecConAug"):
        return []
    if name == "RecAug":
        unknown = sorted(set(settings) - set(_REC_AUG_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: {', '.join(unknown)} not read (RecAug keys: {', '.join(_REC_AUG_KEYS)})"
            )
        return [(f"{OPTS}.rec_aug", dict(settings), where)]
    con = {k: settings[k] for k in ("prob", "ext_data_num", "image_shape") if k in settings}
    return [(f"{OPTS}.rec_con_aug", con, where)]


def _workers(value: Any, where: str) -> list[Item]:
    """``Train.loader.num_workers`` -> ``train.data_workers`` (both: worker processes, 0 = in the trainer)."""
    if value is None:
        return []
    return [("train.data_workers", worker_count(value, f"{where}.num_workers"), f"{where}.num_workers")]


def _loader(loader: dict[str, Any], where: str, train: bool) -> list[Item]:
    read = ("batch_size_per_card", "num_workers") if train else ("batch_size_per_card",)
    ignored = sorted(k for k in loader if k not in read)
    if ignored:
        log.warning("%s keys with their own meaning here are ignored: %s", where, ", ".join(ignored))
    items = _workers(loader.get("num_workers"), where) if train else []
    if "batch_size_per_card" not in loader:
        return items
    target = "train.batch_size" if train else f"{OPTS}.eval_batch_size"
    return [(target, int(loader["batch_size_per_card"]), f"{where}.batch_size_per_card"), *items]


def _sampler(sampler: dict[str, Any], where: str, ds_width: bool) -> list[Item]:
    if not sampler:
        if ds_width:
            raise ConfigError(
                "Train.dataset.ds_width: width-aware batches are made by Train.sampler MultiScaleSampler",
                hint="add the sampler, or set ds_width false",
            )
        return []
    if sampler.get("name") != "MultiScaleSampler":
        raise ConfigError(f"{where}.name: only MultiScaleSampler is supported, got {sampler.get('name')!r}")
    if sampler.get("is_training", True) is not True:
        raise ConfigError(f"{where}.is_training: only true (the training mode) is supported")
    settings = {k: sampler[k] for k in _SAMPLER_KEYS if k in sampler}
    if ds_width:
        settings["ds_width"] = True
    return [(f"{OPTS}.multiscale", settings, where)]


def dataset_items(section: Any, name: str) -> list[Item]:
    """Our keys for a ``Train`` (``name == "Train"``) or ``Eval`` section."""
    data = mapping(section, name)
    train = name == "Train"
    dataset = mapping(data.get("dataset"), f"{name}.dataset")
    kinds = ("SimpleDataSet", "MultiScaleDataSet") if train else ("SimpleDataSet",)
    if dataset.get("name") not in kinds:
        raise ConfigError(f"{name}.dataset.name: {dataset.get('name')!r} is not one of {', '.join(kinds)}")
    if dataset.get("ds_width") and not train:
        raise ConfigError(f"{name}.dataset.ds_width: only Train batches are width-aware; set it false")
    items: list[Item] = []
    if "data_dir" in dataset:
        items.append((f"{OPTS}.data_dir", str(dataset["data_dir"]), f"{name}.dataset.data_dir"))
    if "label_file_list" in dataset:
        files = _label_files(dataset["label_file_list"], f"{name}.dataset.label_file_list")
        key = f"{OPTS}.train_label_files" if train else f"{OPTS}.eval_label_files"
        items.append((key, files, f"{name}.dataset.label_file_list"))
    for i, entry in enumerate(dataset.get("transforms") or []):
        where = f"{name}.dataset.transforms[{i}]"
        kind, settings = _transform(entry, where)
        items += _transform_items(kind, settings, f"{where}.{kind}", train)
    if train:
        sampler = mapping(data.get("sampler"), f"{name}.sampler")
        items += _sampler(sampler, f"{name}.sampler", bool(dataset.get("ds_width")))
    return items + _loader(mapping(data.get("loader"), f"{name}.loader"), f"{name}.loader", train)
