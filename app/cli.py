"""The ``warmstart`` command line: parse arguments, dispatch to a command module, map errors to exit codes.

Each module in :mod:`app.commands` exposes ``register(subparsers)``, which adds its subcommand and sets
``func`` to a function ``(args) -> int``. No work happens here.

Signals: the first thing :func:`main` does is route SIGTERM/SIGINT to a start-up handler, so a stop
before the command has its own handler ends with one line and exit 143, not death by signal. Importing
the command modules imports paddle, which installs its own C++ SIGTERM handler; that happens with both
signals held (:func:`app.signals.held`), and ours is put back before they are released. ``train`` and
``launch`` then install their own handlers. When :func:`main` ends the process's own command, it ignores
both signals until the process exits (a late one must not kill it or change its exit code); called
in-process, it restores the handlers it found.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence

from app import __version__, redact, signals
from app.commands.common import EXIT_CODES_HELP
from app.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PREEMPTED, AppError, PreemptedBeforeStart

__all__ = ["main", "build_parser"]

#: Commands whose early stop is a preemption before training (the others are simply stopped).
_TRAINING_COMMANDS = ("train", "launch")


def build_parser() -> argparse.ArgumentParser:
    from app.commands import ckpt, config_cmd, export, launch, plan, plot, train

    parser = argparse.ArgumentParser(
        prog="warmstart",
        description="Fine-tune PaddlePaddle models with warmup, exact resume and verified checkpoints.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"warmstart {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (train, launch, plan, config_cmd, ckpt, plot, export):
        module.register(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # paddle installs its own root handler at import
    )
    redact.install()  # no credential in a URL reaches stderr, whichever module logs it
    # Paddle and botocore are chatty at INFO.
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stopped_line(command: str | None, stop: signals.StartupSignal) -> str:
    if command is None or command in _TRAINING_COMMANDS:
        return PreemptedBeforeStart(f"signal {stop.name}").report()
    return f"warmstart: stopped: signal {stop.name} before warmstart {command} finished (run it again)"


def _exit_now_if_saving(code: int) -> None:
    """End the process at once if a checkpoint save thread is still running: the interpreter would wait for
    it at exit, and a second Ctrl-C means "stop now". Safe: a save commits its manifest last, so one cut
    short stays an uncommitted leftover (the same as a kill -9 mid-save)."""
    from app.checkpoint.saver import THREAD_PREFIX

    if any(t.name.startswith(THREAD_PREFIX) and t.is_alive() for t in threading.enumerate()):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or EXIT_OK)
    except AppError as exc:
        print(exc.report(), file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:  # a second Ctrl-C while training: no save
        print(
            "warmstart: interrupted: stopped at once without saving (a second Ctrl-C); run the same "
            "command again to resume from the last committed checkpoint",
            file=sys.stderr,
            flush=True,
        )
        _exit_now_if_saving(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code.

    ``argv`` None means this process's own command line (the ``warmstart`` script, which exits with the
    returned code): when the command is done, SIGTERM/SIGINT are ignored until the process ends instead
    of being restored (:func:`app.signals.leaving`), and a rank of a ``warmstart launch`` records its code
    for the supervisor (:func:`app.train.rankexit.report`). Called with ``argv`` (tests, in-process
    callers), the handlers found on entry are restored.
    """
    restore = signals.install(signals.startup_handler)  # first, before anything slow
    try:
        code = _run(argv)
    finally:
        if argv is None:
            signals.leaving()
        else:
            restore()
    if argv is None:
        from app.train.rankexit import report

        return report(code)
    return code


def _run(argv: Sequence[str] | None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if not w.startswith("-")), None)  # parsed properly below
    try:
        with signals.held("while importing the command modules"):
            parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        _setup_logging(args.verbose)
        return _dispatch(args)
    except signals.StartupSignal as stop:
        print(_stopped_line(command, stop), file=sys.stderr, flush=True)
        return EXIT_PREEMPTED


if __name__ == "__main__":
    sys.exit(main())
