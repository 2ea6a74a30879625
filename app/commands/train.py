"""``warmstart train``: the main job (fetch -> warm start -> train with warmup -> publish)."""

from __future__ import annotations

import argparse
import logging

from app.errors import EXIT_PREEMPTED

__all__ = ["register", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = f"""Train from the run's own latest committed checkpoint if one exists (exact resume), else
warm-start from init.from (mode weights|partial|resume), else cold-start; checkpoint while training and
publish the final checkpoint. SIGTERM/SIGINT or a spot notice: finish the step, save, exit {EXIT_PREEMPTED}.
Running the same command again always continues where the work stopped."""


def register(sub: argparse._SubParsersAction) -> None:
    from app.cli import EXIT_CODES_HELP, add_config_args

    p = sub.add_parser(
        "train",
        help="train (resume / warm start / cold start), checkpoint, publish",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.config import load_config
    from app.train.preempt import StopRequest, install_signal_handlers

    cfg = load_config(args.config, args.overrides)
    stop = StopRequest()
    restore_signals = install_signal_handlers(stop)
    try:
        return _train(cfg, stop)
    finally:
        restore_signals()


def _train(cfg, stop) -> int:  # noqa: ANN001
    from app.train.loop import run_loop
    from app.train.spot import start_spot_watcher
    from app.train.start import prepare

    watcher = start_spot_watcher(cfg.preempt.spot, stop.request)
    session = None
    try:
        session = prepare(cfg, stop)
        return run_loop(session)
    finally:
        if watcher is not None:
            watcher.stop()
        if session is not None:
            _close(session)


def _close(session) -> None:  # noqa: ANN001
    """Wait for an in-flight save; if the run already failed, report a second failure without masking it."""
    import sys

    failing = sys.exc_info()[0] is not None
    try:
        session.mgr.close()
    except Exception:
        if not failing:
            raise
        log.exception("while stopping after an error, the pending checkpoint save also failed")
    finally:
        session.runlog.close()
