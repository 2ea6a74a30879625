"""``warmstart plan``: show the LR schedule a config produces, before spending compute on it.

Prints the LR at key steps (phase boundaries, quartiles, last step, end), then the auto policies applied
and the lints. ``--json`` prints the LR of every optimizer step; ``--plot`` draws the curve.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from app.commands.common import add_config_args
from app.config import load_config
from app.config.paths import resolve_output_dir
from app.schedule import BuiltSchedule, build_schedule

__all__ = ["register", "run", "key_steps"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="print (and plot) the learning-rate schedule a config produces",
        description="Resolve the schedule of FILE and print the LR at key steps, the auto policies applied "
        "and the lints. Steps are optimizer steps.",
    )
    add_config_args(p)
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        metavar="N",
        help="optimizer steps per epoch, for schedules set in epochs (default: counted from the task's "
        "training data, batch size and accumulation, as `train` does)",
    )
    p.add_argument(
        "--global-batch",
        type=int,
        default=None,
        metavar="N",
        help="global batch for the scaling rules (default: train.batch_size * train.grad_accum_steps)",
    )
    p.add_argument(
        "--json", action="store_true", help='print {"total_steps", "lr", "warnings", "notes"} as JSON'
    )
    p.add_argument("--plot", metavar="PNG", default=None, help="draw the whole curve with its phases to PNG")
    p.set_defaults(func=run)


def key_steps(built: BuiltSchedule) -> dict[int, list[str]]:
    """Step -> labels: start, each phase start, quartiles, the last optimizer step and the end value."""
    total = built.total_steps
    marks: dict[int, list[str]] = {0: ["start"]}
    for phase in built.phases[1:]:
        marks.setdefault(phase.start, []).append(f"{phase.name} starts")
    for q in (1, 2, 3):
        marks.setdefault(round(q * total / 4), []).append(f"{25 * q}%")
    marks.setdefault(total - 1, []).append("last step")
    marks.setdefault(total, []).append("end (value after the last step())")
    return dict(sorted(marks.items()))


def _phase_of(built: BuiltSchedule, step: int) -> str:
    for phase in reversed(built.phases):
        if step >= phase.start:
            return phase.name
    return built.phases[0].name


def _print_text(built: BuiltSchedule, lrs: list[float]) -> None:
    print(
        f"schedule: {built.total_steps} optimizer steps, warmup {built.warmup_steps} steps, "
        f"peak base_lr {built.base_lr:.6g}"
    )
    print("phases:")
    for phase in built.phases:
        print(f"  {phase.name:<28} steps {phase.start}..{phase.end - 1} ({phase.end - phase.start} steps)")
    print(f"\n  {'step':>8}  {'lr':>12}  {'phase':<28} mark")
    for step, labels in key_steps(built).items():
        print(f"  {step:>8}  {lrs[step]:>12.6g}  {_phase_of(built, step):<28} {', '.join(labels)}")
    for title, lines in (("notes (auto policies applied)", built.notes), ("warnings", built.warnings)):
        print(f"\n{title}:" + ("" if lines else " none"))
        for line in lines:
            print(f"  - {line}")


def run(args: argparse.Namespace) -> int:
    if args.plot:  # never / or a system folder (docs/config.md), checked before any work
        resolve_output_dir("--plot", str(Path(args.plot).parent))
    cfg = load_config(args.config, args.overrides)
    batch = (
        args.global_batch
        if args.global_batch is not None
        else cfg.train.batch_size * cfg.train.grad_accum_steps
    )
    spe = args.steps_per_epoch
    if spe is None and _uses_epochs(cfg.schedule):
        spe = _count_steps_per_epoch(cfg)
        print(f"steps per epoch: {spe} (counted from the {cfg.task.kind} training data)")
    built = build_schedule(
        cfg.schedule, steps_per_epoch=spe, global_batch=batch, optimizer_name=cfg.optim.name
    )
    if args.json:
        table = built.lr_table()
        print(
            json.dumps(
                {
                    "total_steps": built.total_steps,
                    "lr": table,
                    "warnings": built.warnings,
                    "notes": built.notes,
                }
            )
        )
    else:
        # One step past the run shows the value the scheduler settles on after the final step().
        _print_text(built, built.lr_table(built.total_steps + 1))
    if args.plot:
        from app.schedule.plot import plot_schedule

        path = plot_schedule(built, args.plot)
        if not args.json:
            print(f"\nplot: {path}")
    return 0


def _uses_epochs(sched) -> bool:  # noqa: ANN001  (ScheduleConfig)
    return any(
        x is not None for x in (sched.epochs, sched.warmup.epochs, *(st.epochs for st in sched.stages))
    )


def _count_steps_per_epoch(cfg) -> int:  # noqa: ANN001  (Config)
    """What ``warmstart train`` would use on one process: builds the task to count its training data."""
    from app import signals
    from app.tasks.base import build_task
    from app.train.data import make_stream

    with signals.held("while building the task"):  # toolkits take SIGTERM at import (app/signals.py)
        task = build_task(cfg.task, cfg.run.seed, allow_pickle=cfg.init.allow_pickle)
    stream = make_stream(task, cfg.train.batch_size, cfg.run.seed, 1, 0)  # a task's own plan, if it has one
    return max(1, stream.micro_batches_per_epoch // cfg.train.grad_accum_steps)
