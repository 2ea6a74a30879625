"""Where a run starts from, and how checkpoint tensors are put into the model.

Order: the run's own committed checkpoint (exact resume) > ``init.from`` (warm start in ``init.mode``)
> cold start. ``resume`` and ``weights`` are strict: any missing, unexpected or mis-shaped tensor stops
the run with the first mismatches listed. ``partial`` loads what matches, skips ``init.ignore``
patterns, prints a report, and stops if too little of the model was loaded.

A warm start from a foreign file pairs names through ``init.key_map`` and ``init.match``
(:mod:`app.checkpoint.keymap`) first; ``init.ignore`` and ``min_loaded_fraction`` apply to the model's
names after that pairing. An exact resume always reads our own names.

Names and shapes cannot tell a dictionary or class list of the same size with other names or order: when
the source records a label space (:mod:`app.checkpoint.labels`) that differs from the task's, ``partial``
skips the task's class layers and ``weights`` / ``resume`` stop (:func:`label_change`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import paddle

from app.checkpoint.keymap import match_keys, suggest_mapping
from app.checkpoint.labels import LabelSpace, describe_change
from app.config.schema import InitConfig
from app.errors import CheckpointError
from app.train.state import LoadReport, assign, compare, ignored_names

__all__ = ["LabelChange", "label_change", "label_error", "task_label_space", "load_weights", "warm_lr_lint"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelChange:
    """The source's label space differs from the run's: why, and the class layers that mean labels."""

    reason: str
    class_layers: tuple[str, ...]


def task_label_space(task: Any) -> LabelSpace | None:
    """The task's label space (its optional ``label_space()`` hook), or None if it has none."""
    hook = getattr(task, "label_space", None)
    return hook() if hook is not None else None


def label_change(
    space: LabelSpace | None, meta: dict[str, Any], source: str, *, note_unrecorded: bool = True
) -> LabelChange | None:
    """How the label space ``source``'s meta records differs from ``space``; None if it is the same, or
    if either side has none (logged when ``note_unrecorded``: the class layers then load unchecked)."""
    if space is None:
        return None
    record = meta.get("label_space")
    if record is None:
        if note_unrecorded:
            log.info(
                "label space not checked: %s records none (a PaddleOCR .pdparams, a plain weights file or a "
                "checkpoint of an older warmstart); the class layers (%s) load by name and shape only",
                source, ", ".join(space.class_layers) or "none named",
            )  # fmt: skip
        return None
    reason = describe_change(record, space)
    return LabelChange(reason, space.class_layers) if reason else None


def label_error(change: LabelChange, what: str, hint: str) -> CheckpointError:
    """The one line that stops a strict load (``what``: e.g. ``weights load from URI``)."""
    return CheckpointError(f"{what} refused: {change.reason}", hint=hint)


def _pairs(model: paddle.nn.Layer, arrays: dict[str, Any], init: InitConfig) -> dict[str, str]:
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    sources = {name: tuple(a.shape) for name, a in arrays.items()}
    return match_keys(shapes, sources, init.key_map, init.match, ignored_names(model, init.ignore)).pairs


def _mapping_hint(model: paddle.nn.Layer, arrays: dict[str, Any], init: InitConfig) -> str | None:
    """When few names paired: the init.match / init.key_map setting that would pair more."""
    if init.key_map or init.match != "exact":
        return None
    rule = suggest_mapping(list(model.state_dict()), list(arrays))
    return f"the source's names look like the model's without a prefix: try {rule}" if rule else None


def load_weights(
    model: paddle.nn.Layer,
    arrays: dict[str, Any],
    mode: str,
    init: InitConfig,
    source: str,
    *,
    mapping: bool = True,
    labels: LabelChange | None = None,
) -> LoadReport:
    """Put checkpoint tensors into ``model`` under ``mode`` rules; returns the report.

    ``mapping=False`` (our own checkpoints: exact resume, export) pairs names as they are, whatever
    ``init.key_map`` / ``init.match`` say. ``labels``: the label space changed (:func:`label_change`).
    """
    pairs = _pairs(model, arrays, init) if mapping and mode != "resume" else None
    if mode == "partial":
        if labels is not None and not labels.class_layers:
            log.warning(
                "%s; this task names no class layers to skip: list them in init.ignore", labels.reason
            )
        relabel = (labels.reason, labels.class_layers) if labels is not None else None
        report = compare(model, arrays, init.ignore, pairs, relabel)
        if report.loaded_fraction < init.min_loaded_fraction:
            problems = report.problems()
            raise CheckpointError(
                f"partial load from {source} matched only {report.loaded_fraction:.1%} of the model "
                f"(init.min_loaded_fraction is {init.min_loaded_fraction:.0%})"
                + (f"; {problems}" if problems else ""),
                hint=_mapping_hint(model, arrays, init)
                or "is init.from the right checkpoint for this architecture?",
            )
    else:
        report = compare(model, arrays, (), pairs)
        if not report.clean:
            raise CheckpointError(
                f"{mode} load from {source} does not match the model: {report.problems()}",
                hint=(_mapping_hint(model, arrays, init) if pairs is not None else None)
                or "a changed head needs init.mode=partial with init.ignore patterns",
            )
        if labels is not None:
            layers = (
                f"({', '.join(labels.class_layers)})" if labels.class_layers else "(list them in init.ignore)"
            )
            raise label_error(
                labels,
                f"{mode} load from {source}",
                "the class layers' rows would stand for other labels: use init.mode: partial to train "
                f"them afresh {layers}, or init.label_check: false to load them anyway",
            )
    assign(model, arrays, report.loaded, report.sources)
    return report


def warm_lr_lint(base_lr: float, parent_meta: dict[str, Any]) -> str | None:
    """Warn when a warm start does not lower the LR relative to the run that made the weights."""
    try:
        parent_lr = float(parent_meta["config"]["schedule"]["base_lr"])
    except (KeyError, TypeError, ValueError):
        return None
    if base_lr > 0.5 * parent_lr:
        return (
            f"warm start with schedule.base_lr={base_lr:g}, but the source run used {parent_lr:g}; "
            f"fine-tuning usually lowers it to 1/5-1/10 (e.g. {parent_lr / 10:g}-{parent_lr / 5:g})"
        )
    return None
