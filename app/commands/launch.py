"""``warmstart launch``: several training processes on this node via Paddle's launcher (exit 143 kept;
how the launch's exit code is made: :mod:`app.train.rankexit`)."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch",
        help="run `warmstart train` in several processes (paddle.distributed.launch), keeping exit 143",
        description="Start N processes of `warmstart ARGS...` with python -m paddle.distributed.launch. "
        "SIGTERM/SIGINT go to the worker processes, which stop at one agreed step, commit a checkpoint "
        "and exit; the launch exits 143 (the bare launcher would exit 15 when signalled, or 241/247 when "
        "it stopped a rank that was still exiting). The launch's code is the ranks' own (see exit codes); "
        "docs/distributed.md says how it is derived. "
        "Example: warmstart launch --nproc-per-node 2 -- train -c configs/demo.yaml",
    )
    p.add_argument("--nproc-per-node", type=int, default=2, metavar="N", help="processes on this node")
    p.add_argument("--log-dir", default="log", metavar="DIR", help="the launcher's per-worker logs")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then the warmstart command, e.g. train -c FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.errors import ConfigError
    from app.train.supervise import supervise

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not rest:
        raise ConfigError("warmstart launch: nothing to run", hint="add -- train -c FILE")
    from app.config.paths import resolve_output_dir

    log_dir = str(resolve_output_dir("--log-dir", args.log_dir))  # never / or a system folder
    return supervise(args.nproc_per_node, log_dir, rest)
