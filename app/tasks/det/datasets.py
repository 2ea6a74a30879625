"""Build a ppdet config's data sets the way ppdet does, and turn every mistake in them into one line.

ppdet accepts two spellings of a data set section: the YAML tag (``TrainDataset: !COCODataSet {...}``,
constructed while the file is read) and the ``name:`` form of release 2.6's ``configs/datasets/*.yml``
(``TrainDataset: {name: COCODataSet, ...}``, built by ppdet's registered ``TrainDataset`` wrapper). Both
are built here with ``ppdet.core.workspace.create(section)()``, as ppdet's own Trainer does. Before ppdet
reads the file, :func:`check_sections` checks each section of the safely parsed config (a known source,
keys that source takes, paths as strings), so a mistake is one line naming the key, never a traceback.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from app.errors import ConfigError, TaskError

__all__ = ["SECTIONS", "SOURCES", "DatasetPaths", "check_sections", "build_dataset", "load_records"]

log = logging.getLogger(__name__)

WHERE = "task.options.ppdet_config"
SECTIONS = ("TrainDataset", "EvalDataset", "TestDataset")
#: The ppdet sources each section may name (the records and metrics below are written for these).
SOURCES = {
    "TrainDataset": ("COCODataSet", "VOCDataSet"),
    "EvalDataset": ("COCODataSet", "VOCDataSet"),
    "TestDataset": ("ImageFolder", "COCODataSet", "VOCDataSet"),
}
_PATH_KEYS = ("dataset_dir", "image_dir", "anno_path", "label_list")


@dataclass
class DatasetPaths:
    """Overrides for a ppdet data set (None keeps the value from the ppdet config)."""

    dataset_dir: str | None = None
    image_dir: str | None = None
    anno_path: str | None = None


def _accepted_keys(name: str) -> set[str] | None:
    """The keyword arguments ppdet's source class takes (None: it takes any, ``**kwargs``)."""
    from ppdet.data import source

    params = inspect.signature(getattr(source, name).__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {k for k in params if k != "self"}


def _check_section(section: str, value: Any) -> None:
    supported = SOURCES[section]
    form = f"write it as `{section}: {{name: {supported[0]}, dataset_dir: ..., anno_path: ...}}`"
    if not isinstance(value, dict):
        raise ConfigError(f"{WHERE}: {section} must be a mapping, got {type(value).__name__}", hint=form)
    name = value.get("name")
    if name is None:
        raise ConfigError(f"{WHERE}: {section}.name is missing (which ppdet source?)", hint=form)
    if name not in supported:
        raise ConfigError(
            f"{WHERE}: {section}.name {name!r} is not supported (supported: {', '.join(supported)})",
            hint="convert the data set to COCO json or Pascal VOC xml",
        )
    accepted = _accepted_keys(str(name))
    unknown = sorted(k for k in value if k != "name" and accepted is not None and k not in accepted)
    if unknown:
        raise ConfigError(
            f"{WHERE}: {section}.{unknown[0]} is not a {name} key (keys: {', '.join(sorted(accepted or ()))})"
        )
    for key in _PATH_KEYS:
        if key == "image_dir" and name == "ImageFolder":
            continue  # ImageFolder also takes a list of folders
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ConfigError(f"{WHERE}: {section}.{key} must be a path string, got {value[key]!r}")


def check_sections(raw: dict[str, Any]) -> None:
    """Check the data set sections of a safely parsed ppdet config (``!Tag`` read as ``name: Tag``)."""
    for section in SECTIONS:
        if section in raw:
            _check_section(section, raw[section])
        elif section != "TestDataset":
            raise ConfigError(
                f"{WHERE}: no {section} section (neither in the file nor in its _BASE_ files)",
                hint="include ppdet's configs/datasets/coco_detection.yml or voc.yml, or write the section",
            )


def build_dataset(section: str, paths: DatasetPaths | None = None) -> Any:
    """``create(section)()`` — tag or ``name:`` form — with the path overrides set on the result."""
    import ppdet.core.workspace as ws

    current = ws.global_config.get(section)
    if isinstance(current, dict) and "name" not in current:
        raise ConfigError(
            f"{WHERE}: {section}.name is missing after merging the _BASE_ files (ppdet replaces a "
            "`!Tag` section of a base file by a plain mapping of the including file)",
            hint=f"write the whole section with name: in the including file, e.g. name: {SOURCES[section][0]}",
        )
    try:
        dataset = ws.create(section)()
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{WHERE}: ppdet cannot build {section}: {exc}") from None
    for key in ("dataset_dir", "image_dir", "anno_path"):
        value = getattr(paths, key) if paths is not None else None
        if value is not None:
            setattr(dataset, key, value)
    return dataset


def _check_files(dataset: Any, section: str, role: str) -> str:
    anno = dataset.get_anno()
    if not anno or not Path(anno).is_file():
        raise TaskError(
            f"{section}.anno_path: {role} annotations {anno!r} do not exist",
            hint="set task.options.dataset_dir / train_anno / eval_anno (or task.options.synthetic)",
        )
    label_list = getattr(dataset, "label_list", None)
    if label_list and not (Path(dataset.dataset_dir) / label_list).is_file():
        raise TaskError(
            f"{section}.label_list: {str(Path(dataset.dataset_dir) / label_list)!r} does not exist",
            hint="label_list is relative to dataset_dir: one class name a line",
        )
    return str(anno)


def load_records(dataset: Any, section: str, role: str) -> tuple[list[dict], str]:
    """Parse a built ppdet data set; returns its records and the annotation file's full path."""
    anno = _check_files(dataset, section, role)
    try:
        dataset.parse_dataset()
    except (AssertionError, ValueError, KeyError, IndexError, TypeError, OSError, ParseError) as exc:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise TaskError(
            f"{section}: ppdet cannot read the {role} annotations {anno!r} as {type(dataset).__name__} ({what})",
            hint="check anno_path / label_list / image_dir against the files",
        ) from None
    records = list(dataset.roidbs)
    if getattr(dataset, "repeat", 1) != 1:
        log.warning(
            "%s.repeat=%s is not applied (ppdet's benchmark option): an epoch is one pass over the %d records",
            section, dataset.repeat, len(records),
        )  # fmt: skip
    if not records:
        raise TaskError(
            f"{section}: {role} annotations {anno!r} contain no usable images",
            hint=f"check {section}.image_dir (images that do not exist are skipped)",
        )
    if role == "training" and not {"gt_bbox", "gt_class"} <= set(records[0]):
        raise ConfigError(
            f"{WHERE}: {section}.data_fields {dataset.data_fields} must include gt_bbox and gt_class to train"
        )
    return records, anno
