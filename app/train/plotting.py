"""Read a run's ``log.jsonl`` into clean per-step series and draw its loss/LR/metric curves as a PNG.

The trainer appends one JSON object per line to ``RUN_DIR/log.jsonl``: ``kind: "train"`` lines (step,
epoch, lr, loss, ...), ``kind: "eval"`` lines (step, epoch, metrics) and ``kind: "event"`` lines (resume,
warm_start, checkpoint, preempted, ...). A resumed run appends to the same file, so a step can appear
twice. Reading keeps one point per step, the one logged last, and at each ``resume`` event drops points
after the resume step, since they belong to the attempt that was cut short and was rolled back. A line torn
by a kill (invalid JSON) is skipped and counted.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import ConfigError

__all__ = [
    "LOG_NAME",
    "MARKER_EVENTS",
    "TrainPoint",
    "EvalPoint",
    "Event",
    "RunLog",
    "read_run_log",
    "plot_run",
    "summarize",
]

log = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"

#: Events drawn as vertical lines: name -> (colour, line style, legend label).
MARKER_EVENTS: dict[str, tuple[str, str, str]] = {
    "resume": ("tab:red", "--", "resume"),
    "warm_start": ("tab:green", "--", "warm start"),
    "unfreeze": ("tab:purple", ":", "unfreeze"),
}


@dataclass(frozen=True)
class TrainPoint:
    step: int
    epoch: int
    lr: float
    loss: float
    samples_per_s: float | None = None
    eta_s: float | None = None
    time: str | None = None


@dataclass(frozen=True)
class EvalPoint:
    step: int
    epoch: int
    metrics: dict[str, float]
    time: str | None = None


@dataclass(frozen=True)
class Event:
    step: int
    event: str
    #: The line's other keys (e.g. a checkpoint URI), as logged.
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunLog:
    """One point per step (sorted by step) and the events in the order they happened."""

    train: list[TrainPoint]
    eval: list[EvalPoint]
    events: list[Event]
    #: Lines that were not valid JSON or lacked required fields.
    skipped_lines: int = 0

    def markers(self) -> list[Event]:
        return [e for e in self.events if e.event in MARKER_EVENTS]

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for point in self.eval:
            names.update(dict.fromkeys(point.metrics))
        return list(names)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _train_point(row: dict[str, Any]) -> TrainPoint | None:
    step, lr, loss = _int(row.get("step")), _number(row.get("lr")), _number(row.get("loss"))
    if step is None or lr is None or loss is None:
        return None
    return TrainPoint(
        step=step,
        epoch=_int(row.get("epoch")) or 0,
        lr=lr,
        loss=loss,
        samples_per_s=_number(row.get("samples_per_s")),
        eta_s=_number(row.get("eta_s")),
        time=row.get("time") if isinstance(row.get("time"), str) else None,
    )


def _eval_point(row: dict[str, Any]) -> EvalPoint | None:
    step, metrics = _int(row.get("step")), row.get("metrics")
    if step is None or not isinstance(metrics, dict):
        return None
    values = {str(k): float(v) for k, v in metrics.items() if _number(v) is not None}
    time = row.get("time") if isinstance(row.get("time"), str) else None
    return EvalPoint(step=step, epoch=_int(row.get("epoch")) or 0, metrics=values, time=time)


def _event(row: dict[str, Any]) -> Event | None:
    step, name = _int(row.get("step")), row.get("event")
    if step is None or not isinstance(name, str):
        return None
    details = {k: v for k, v in row.items() if k not in ("kind", "step", "event")}
    return Event(step=step, event=name, details=details)


_PARSERS: dict[Any, Any] = {"train": _train_point, "eval": _eval_point, "event": _event}


class _Collector:
    """Applies the "last line per step wins, resume rolls back" rules while lines are read."""

    def __init__(self) -> None:
        self.train: dict[int, TrainPoint] = {}
        self.eval: dict[int, EvalPoint] = {}
        self.events: dict[tuple[int, str], Event] = {}
        self.skipped = 0

    def add(self, row: Any) -> None:
        parse = _PARSERS.get(row.get("kind")) if isinstance(row, dict) else None
        item = parse(row) if parse else None
        if item is None:
            self.skipped += 1
        elif isinstance(item, TrainPoint):
            self.train[item.step] = item
        elif isinstance(item, EvalPoint):
            self.eval[item.step] = item
        else:
            self._add_event(item)

    def _add_event(self, event: Event) -> None:
        key = (event.step, event.event)
        self.events.pop(key, None)  # re-insert so the order is that of the latest occurrence
        self.events[key] = event
        if event.event == "resume":
            self.train = {s: p for s, p in self.train.items() if s <= event.step}
            self.eval = {s: p for s, p in self.eval.items() if s <= event.step}

    def result(self) -> RunLog:
        return RunLog(
            train=[self.train[s] for s in sorted(self.train)],
            eval=[self.eval[s] for s in sorted(self.eval)],
            events=list(self.events.values()),
            skipped_lines=self.skipped,
        )


def read_run_log(path: str | Path) -> RunLog:
    """Parse a ``log.jsonl``; raises :class:`ConfigError` if it is missing or unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(
            f"run log {str(p)!r} does not exist", hint="has this run logged a step yet?"
        ) from None
    except OSError as exc:
        raise ConfigError(f"run log {str(p)!r} cannot be read: {exc.strerror}") from None
    collector = _Collector()
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            collector.add(json.loads(line))
        except ValueError:
            collector.skipped += 1
    run_log = collector.result()
    if run_log.skipped_lines:
        log.warning("%s: skipped %d unreadable or incomplete line(s)", p, run_log.skipped_lines)
    return run_log


def _draw_markers(axes: list[Any], run_log: RunLog) -> None:
    labelled: set[str] = set()
    for event in run_log.markers():
        colour, style, label = MARKER_EVENTS[event.event]
        for ax in axes:
            legend = label if ax is axes[0] and label not in labelled else None
            ax.axvline(event.step, color=colour, linestyle=style, linewidth=1.0, alpha=0.8, label=legend)
        labelled.add(label)


def _draw_loss(ax: Any, run_log: RunLog) -> None:
    steps = [p.step for p in run_log.train]
    ax.plot(steps, [p.loss for p in run_log.train], color="tab:blue", linewidth=1.2, label="loss")
    ax.set_ylabel("loss")


def _draw_lr(ax: Any, run_log: RunLog, log_lr: bool) -> None:
    steps = [p.step for p in run_log.train]
    ax.plot(steps, [p.lr for p in run_log.train], color="tab:orange", linewidth=1.2, label="lr")
    ax.set_ylabel("learning rate")
    if log_lr and any(p.lr > 0 for p in run_log.train):
        ax.set_yscale("log", nonpositive="mask")  # warmup starts at lr 0: masked, not an error


def _draw_eval(ax: Any, run_log: RunLog) -> None:
    for name in run_log.metric_names():
        points = [(p.step, p.metrics[name]) for p in run_log.eval if name in p.metrics]
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=name)
    ax.set_ylabel("eval")
    ax.legend(loc="best", fontsize="small")


def plot_run(run_log: RunLog, out: str | Path, *, title: str = "", log_lr: bool = False) -> Path:
    """Draw loss (top), LR and, when present, eval metrics vs step; write a PNG atomically to ``out``."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state; saves via Agg

    panels = 3 if run_log.metric_names() else 2
    fig = Figure(figsize=(10, 2.6 * panels + 0.6), dpi=100, layout="constrained")
    axes = list(fig.subplots(panels, 1, sharex=True))
    _draw_loss(axes[0], run_log)
    _draw_lr(axes[1], run_log, log_lr)
    if panels == 3:
        _draw_eval(axes[2], run_log)
    _draw_markers(axes, run_log)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if run_log.markers():
        axes[0].legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    return _save_png(fig, Path(out))


def _save_png(fig: Any, out: Path) -> Path:
    if not out.parent.is_dir():
        raise ConfigError(f"output folder {str(out.parent)!r} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    return out


def summarize(run_log: RunLog) -> str:
    """One line for the terminal: steps covered, last loss and LR, restarts, last metrics."""
    last = run_log.train[-1]
    parts = [
        f"steps {run_log.train[0].step}-{last.step}",
        f"last loss {last.loss:.4g}",
        f"lr {last.lr:.3g}",
    ]
    restarts = sum(1 for e in run_log.events if e.event == "resume")
    if restarts:
        parts.append(f"{restarts} resume(s)")
    if run_log.eval:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in run_log.eval[-1].metrics.items() if math.isfinite(v))
        parts.append(f"eval@{run_log.eval[-1].step}: {metrics}")
    return "; ".join(parts)
