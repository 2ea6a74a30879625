"""``warmstart plot RUN_DIR``: draw a run's loss, learning-rate and eval curves from its ``log.jsonl``."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.config.paths import resolve_output_dir
from app.errors import ConfigError

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot loss/LR/eval curves of a run to a PNG",
        description=(
            "Read RUN_DIR/log.jsonl and write a PNG: loss vs step, learning rate vs step, and eval metrics "
            "when the run logged any. Dashed lines mark resumes and the warm start. After a resume, the "
            "steps logged last win."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (run.dir of the config)")
    p.add_argument("--out", "-o", metavar="FILE.png", help="output file (default: RUN_DIR/curves.png)")
    p.add_argument("--log-lr", action="store_true", help="logarithmic y axis for the learning rate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.train.plotting import LOG_NAME, plot_run, read_run_log, summarize

    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir / "curves.png"
    resolve_output_dir("--out", str(out.parent))  # never / or a system folder (docs/config.md)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {str(run_dir)!r} does not exist", hint="pass the run's run.dir")
    log_path = run_dir / LOG_NAME
    run_log = read_run_log(log_path)
    if not run_log.train:
        raise ConfigError(f"run log {str(log_path)!r} has no training lines yet; nothing to plot")
    plot_run(run_log, out, title=run_dir.resolve().name, log_lr=args.log_lr)
    print(f"wrote {out} ({summarize(run_log)})")
    return 0
