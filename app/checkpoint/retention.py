"""Retention: which committed checkpoints to keep, and cleanup of uncommitted leftovers.

The rule is a pure function (:func:`plan_retention`): keep the last ``keep_last`` steps, the best
``keep_best`` by a named metric (min or max, read from ``meta.json``'s ``metrics``), and every protected
step (the one being resumed from, one in flight, tagged versions). Deleting removes the manifest first,
so a half-deleted checkpoint is never taken for a committed one. An uncommitted step folder is a leftover
once its ``.started`` marker is older than ``leftover_minutes``; one without a marker has an unknown age
and is treated as old. A step in flight is never touched.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.checkpoint.catalog import StepStatus, scan
from app.checkpoint.config import CheckpointConfig
from app.checkpoint.jsonread import json_object, read_json
from app.checkpoint.layout import MANIFEST, META
from app.checkpoint.lineage import parse_utc
from app.checkpoint.tags import tagged_steps
from app.checkpoint.writer import read_started
from app.errors import CheckpointError
from app.store.base import NotFoundError, ObjectStore

__all__ = ["RetentionPlan", "plan_retention", "metric_of", "find_leftovers", "collect", "apply"]

log = logging.getLogger(__name__)


@dataclass
class RetentionPlan:
    keep: list[int] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)
    #: Uncommitted step folders old enough to remove: step -> reason.
    leftovers: dict[int, str] = field(default_factory=dict)
    #: Why each kept step is kept ("last", "best accuracy=0.93", "protected", "tag v1").
    reasons: dict[int, list[str]] = field(default_factory=dict)


def plan_retention(
    metrics: dict[int, float | None],
    keep_last: int | None,
    keep_best: int,
    mode: str,
    protected: Mapping[int, list[str]] | None = None,
) -> tuple[list[int], list[int], dict[int, list[str]]]:
    """Split committed steps (with their metric value, or None) into (keep, delete, reasons).

    ``protected`` maps steps that must be kept to why ("resumed from", "in flight", "tag v1").
    """
    steps = sorted(metrics)
    reasons: dict[int, list[str]] = {}
    last = steps if keep_last is None else steps[-keep_last:] if keep_last > 0 else []
    for step in last:
        reasons.setdefault(step, []).append("last")
    scored = [(v, s) for s, v in metrics.items() if v is not None and not math.isnan(v)]
    # Best first; among equal values the later step wins.
    scored.sort(key=lambda vs: (vs[0] if mode == "max" else -vs[0], vs[1]), reverse=True)
    for _, step in scored[: max(keep_best, 0)]:
        reasons.setdefault(step, []).append("best")
    for step, why in (protected or {}).items():
        if step in metrics:
            reasons.setdefault(step, []).extend(why)
    if steps and steps[-1] not in reasons:  # whatever the policy says, the newest committed step stays
        reasons[steps[-1]] = ["newest"]
    keep = sorted(reasons)
    return keep, [s for s in steps if s not in reasons], reasons


def metric_of(store: ObjectStore, status: StepStatus, name: str | None) -> float | None:
    """The named metric from a committed step's meta.json, or None if absent/unreadable (logged)."""
    if not name:
        return None
    where = store.describe(f"{status.key}/{META}")
    try:
        meta = json_object(read_json(store, f"{status.key}/{META}", allow_nan=True), where)
        metrics = meta.get("metrics")
        value = metrics.get(name) if isinstance(metrics, dict) else None
    except NotFoundError:
        return None
    except CheckpointError as exc:
        log.warning("ignoring the metrics of step %d: %s", status.step, exc.line())
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _age_minutes(store: ObjectStore, status: StepStatus, now: dt.datetime) -> float | None:
    marker = read_started(store, status.key)
    started = parse_utc(marker.get("utc", "")) if isinstance(marker, dict) else None
    return None if started is None else (now - started).total_seconds() / 60.0


def _holds_files(status: StepStatus) -> bool:
    """True when the folder holds any object besides an S3 "folder" marker (``step-N/``)."""
    return any(not info.key.endswith("/") for info in status.objects)


def find_leftovers(
    store: ObjectStore, statuses: list[StepStatus], older_than_min: float, in_flight: Iterable[int] = ()
) -> dict[int, str]:
    """Uncommitted step folders whose save started more than ``older_than_min`` minutes ago, and empty
    ones. A folder with files but no start marker is not ours to judge (another tool may be copying a
    checkpoint in, manifest last): its age is unknown, so it is kept and logged, never deleted."""
    now = dt.datetime.now(dt.UTC)
    busy = set(in_flight)
    found: dict[int, str] = {}
    for status in statuses:
        if status.has_manifest or status.step in busy:  # only a folder without any manifest is a leftover
            continue
        age = _age_minutes(store, status, now)
        if age is None and _holds_files(status):
            log.warning(
                "keeping uncommitted step %d at %s: it has no start marker, so its age is unknown "
                "(delete it by hand if nothing is writing it)",
                status.step,
                store.describe(status.key),
            )
        elif age is None:
            found[status.step] = "uncommitted, empty folder"
        elif age >= older_than_min:
            found[status.step] = f"uncommitted, started {age:.0f} min ago"
    return found


def collect(
    store: ObjectStore, cfg: CheckpointConfig, protected: Iterable[int] = (), in_flight: Iterable[int] = ()
) -> RetentionPlan:
    """Decide what retention and leftover cleanup would delete (reads the store; deletes nothing)."""
    statuses = scan(store)
    tags = tagged_steps(store)
    busy = set(in_flight)
    guard: dict[int, list[str]] = {step: [f"tag {n}" for n in names] for step, names in tags.items()}
    for step in protected:
        guard.setdefault(step, []).append("protected")
    for step in busy:
        guard.setdefault(step, []).append("in flight")
    committed_ = [s for s in statuses if s.committed]
    intact = [s.step for s in committed_ if s.intact]
    if intact and intact[-1] != committed_[-1].step:  # a newer step is torn: keep the last whole one too
        guard.setdefault(intact[-1], []).append("newest intact")
    values = {s.step: metric_of(store, s, cfg.best_metric if cfg.keep_best else None) for s in committed_}
    keep, delete, reasons = plan_retention(values, cfg.keep_last, cfg.keep_best, cfg.best_mode, guard)
    leftovers = find_leftovers(store, statuses, cfg.leftover_minutes, busy)
    return RetentionPlan(keep, delete, leftovers, reasons)


def _delete_step(store: ObjectStore, status: StepStatus) -> None:
    if not status.objects:  # an empty folder
        store.remove_empty_folder(status.key)
        return
    keys = [info.key for info in status.objects]
    manifest = f"{status.key}/{MANIFEST}"
    if manifest in keys:  # un-commit first
        store.delete([manifest])
        keys.remove(manifest)
    store.delete(keys)


def apply(store: ObjectStore, plan: RetentionPlan) -> list[int]:
    """Delete what ``plan`` says (re-listing each folder now); returns the steps removed."""
    targets = set(plan.delete) | set(plan.leftovers)
    removed: list[int] = []
    for status in scan(store):
        if status.step not in targets:
            continue
        if status.step in plan.leftovers and status.has_manifest:
            continue  # committed (or given a manifest) since the plan was made
        if status.step in plan.delete and not status.committed:
            continue  # its manifest became unreadable since the plan was made: unusable, kept
        _delete_step(store, status)
        why = plan.leftovers.get(status.step, "retention")
        log.info("deleted checkpoint step %d at %s (%s)", status.step, store.describe(status.key), why)
        removed.append(status.step)
    return removed
