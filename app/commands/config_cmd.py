"""``warmstart config``: resolve a configuration and print it."""

from __future__ import annotations

import argparse
import json

from app.commands.common import add_config_args
from app.config import config_hash, config_to_yaml, load_config
from app.config.load import redacted

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="validate a config and print the resolved result",
        description="Load FILE, apply WARMSTART_* env vars then --set overrides, validate, and print "
        "(credentials in URLs are shown as ***).",
    )
    add_config_args(p)
    p.add_argument("--print", action="store_true", help="print the resolved config (the default action)")
    p.add_argument("--json", action="store_true", help="print as JSON instead of YAML")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if args.json:
        print(json.dumps(redacted(cfg), indent=2))  # credentials in URLs masked, as in lineage
    else:
        print(f"# resolved config (sha256 {config_hash(cfg)[:12]})")
        print(config_to_yaml(cfg), end="")
    return 0
