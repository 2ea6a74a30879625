"""``warmstart plan``: placeholder until its module lands."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="(not yet available)")
    p.set_defaults(func=lambda args: 2)
