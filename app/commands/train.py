"""``warmstart train``: the main job (fetch -> warm start -> train with warmup -> publish)."""

from __future__ import annotations

import argparse
import logging

from app.commands.common import EXIT_CODES_HELP, add_config_args
from app.errors import EXIT_PREEMPTED

__all__ = ["register", "run"]

log = logging.getLogger(__name__)

DESCRIPTION = f"""Train from the run's own latest committed checkpoint if one exists (exact resume), else
warm-start from init.from (mode weights|partial|resume), else cold-start; checkpoint while training and
publish the final checkpoint. SIGTERM/SIGINT or a spot notice: finish the step, save, exit {EXIT_PREEMPTED};
before the first step (start-up): exit {EXIT_PREEMPTED} with nothing to save. Running the same command again
always continues where the work stopped."""


def register(sub: argparse._SubParsersAction) -> None:
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
    """Until :func:`install_signal_handlers` runs, a signal ends the CLI's start-up (exit 143, nothing
    to save). From then on it is a stop request: one during :func:`prepare` is honoured before the first
    step (exit 143, nothing saved), one later after the current step (save, exit 143). The handlers stay
    installed until the CLI's ``main`` returns, so a late signal cannot meet the start-up handler."""
    from app.config import load_config
    from app.train.preempt import StopRequest, install_signal_handlers

    cfg = load_config(args.config, args.overrides)
    stop = StopRequest()
    install_signal_handlers(stop)
    return _train(cfg, stop)


def _train(cfg, stop) -> int:  # noqa: ANN001
    from app import signals

    with signals.held("while importing the trainer"):
        from app.train import peers
        from app.train.loop import run_loop
        from app.train.spot import SpotKeeper, start_spot_watcher
        from app.train.start import prepare

    watcher = start_spot_watcher(cfg.preempt.spot, stop.request)
    keeper = SpotKeeper(watcher, stop.request) if watcher is not None else None
    if keeper is not None:
        stop.add_check(keeper.check)
    session = None
    try:
        session = prepare(cfg, stop)  # imports and builds the task with the signals held
        signals.check(during="while preparing the run")  # e.g. by a library imported while loading
        return run_loop(session)
    except Exception as exc:
        from app.errors import AppError

        if not isinstance(exc, AppError):  # e.g. gloo's RuntimeError when a peer's connection resets
            peers.confirm_lost()  # ends the process with exit 142 if a peer was lost
        raise
    finally:
        peers.stop()  # before Python shuts down: its heartbeat thread must not be inside a store call
        if keeper is not None:
            keeper.stop()
        if session is not None:
            _close(session)


def _close(session) -> None:  # noqa: ANN001
    """Wait for an in-flight save; if the run already failed, report a second failure without masking it."""
    import sys

    failing = sys.exc_info()[0] is not None
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):  # a second Ctrl-C: stop now, do not wait
        step = session.mgr.in_flight
        if step is not None:
            log.warning("not waiting for checkpoint step %d, still being saved: it stays uncommitted", step)
        session.runlog.close()
        return
    try:
        session.mgr.close()
    except Exception:
        if not failing:
            raise
        log.exception("while stopping after an error, the pending checkpoint save also failed")
    finally:
        session.runlog.close()
