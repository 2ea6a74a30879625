"""The ``warmstart`` command line: parse arguments, dispatch to a command module, map errors to exit codes.

Each module in :mod:`app.commands` exposes ``register(subparsers)``, which adds its subcommand and sets
``func`` to a function ``(args) -> int``. No work happens here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app import __version__, redact
from app.errors import (
    EXIT_CHECKPOINT,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_STORAGE,
    EXIT_TASK,
    EXIT_USAGE,
    AppError,
)

__all__ = ["main", "build_parser", "EXIT_CODES_HELP"]

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_FAILURE}    unexpected internal error (a bug: a traceback is printed)
  {EXIT_USAGE}    usage or configuration error (fix the command line or config; retrying will not help)
  {EXIT_STORAGE}    storage error (bucket/URI missing, access denied, store down after retries)
  {EXIT_CHECKPOINT}    checkpoint error (none usable, verification failed, does not match the model)
  {EXIT_TASK}    task or data error (missing files, bad columns, unknown labels)
  {EXIT_PREEMPTED}  preempted and saved (SIGTERM/SIGINT or a spot notice): safe to run again, it resumes
"""


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


def add_config_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The ``--config FILE --set KEY=VALUE`` pair shared by every command that reads a config."""
    parser.add_argument("--config", "-c", required=required, metavar="FILE", help="YAML config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set schedule.base_lr=0.01",
    )


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or EXIT_OK)
    except AppError as exc:
        print(f"warmstart: {exc.kind}: {exc.line()}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("warmstart: interrupted", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
