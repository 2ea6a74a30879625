"""Where a run starts from, and how checkpoint tensors are put into the model.

Order: the run's own committed checkpoint (exact resume) > ``init.from`` (warm start in ``init.mode``)
> cold start. ``resume`` and ``weights`` are strict: any missing, unexpected or mis-shaped tensor stops
the run with the first mismatches listed. ``partial`` loads what matches, skips ``init.ignore``
patterns, prints a report, and stops if too little of the model was loaded.
"""

from __future__ import annotations

import logging
from typing import Any

import paddle

from app.config.schema import InitConfig
from app.errors import CheckpointError
from app.train.state import LoadReport, assign, compare

__all__ = ["load_weights", "warm_lr_lint"]

log = logging.getLogger(__name__)


def load_weights(
    model: paddle.nn.Layer, arrays: dict[str, Any], mode: str, init: InitConfig, source: str
) -> LoadReport:
    """Put checkpoint tensors into ``model`` under ``mode`` rules; returns the report."""
    if mode == "partial":
        report = compare(model, arrays, init.ignore)
        if report.loaded_fraction < init.min_loaded_fraction:
            problems = report.problems()
            raise CheckpointError(
                f"partial load from {source} matched only {report.loaded_fraction:.1%} of the model "
                f"(init.min_loaded_fraction is {init.min_loaded_fraction:.0%})"
                + (f"; {problems}" if problems else ""),
                hint="is init.from the right checkpoint for this architecture?",
            )
    else:
        report = compare(model, arrays)
        if not report.clean:
            raise CheckpointError(
                f"{mode} load from {source} does not match the model: {report.problems()}",
                hint="a changed head needs init.mode=partial with init.ignore patterns",
            )
    assign(model, arrays, report.loaded)
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
