"""What several commands share: the ``--config/--set`` arguments and the exit-code table for ``--help``.

Kept apart from :mod:`app.cli` so that command modules never import the CLI that imports them.
"""

from __future__ import annotations

import argparse

from app.errors import (
    EXIT_CHECKPOINT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PEER_LOST,
    EXIT_PREEMPTED,
    EXIT_STORAGE,
    EXIT_TASK,
    EXIT_USAGE,
)

__all__ = ["EXIT_CODES_HELP", "add_config_args"]

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_FAILURE}    unexpected internal error (a bug: a traceback is printed)
  {EXIT_USAGE}    usage or configuration error (fix the command line or config; retrying will not help)
  {EXIT_STORAGE}    storage error (bucket/URI missing, access denied, store down after retries)
  {EXIT_CHECKPOINT}    checkpoint error (none usable, verification failed, does not match the model)
  {EXIT_TASK}    task or data error (missing files, bad columns, unknown labels)
  {EXIT_PREEMPTED}  preempted (SIGTERM/SIGINT or a spot notice): saved if training had started, else nothing
       to save; safe to run again, it resumes
  {EXIT_INTERRUPTED}  interrupted by a second Ctrl-C while training: stopped at once, NOT saved; run again to
       resume from the last committed checkpoint
  {EXIT_PEER_LOST}  another rank of a multi-process job was lost (node gone, link cut): stopped at once, NOT
       saved; run again (every node) to resume from the last committed checkpoint
"""


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
