"""The trainer process of the check: ``warmstart <args>``, optionally on a CPU standing in for a GPU.

``python -m app.gpucheck.child [--simulate-gpu 8.0] [--scaler-incr-every N] -- train -c ... --set ...``
runs :func:`app.cli.main` in this process, so real signals reach the real trainer. ``--simulate-gpu`` is
the CPU test mode only (:mod:`app.gpucheck.standin`); on a GPU the child is plain ``warmstart``.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.gpucheck.child")
    parser.add_argument("--simulate-gpu", default=None, help="compute capability, e.g. 8.0 (CPU test mode)")
    parser.add_argument("--scaler-incr-every", type=int, default=1000)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    from app import cli

    if ns.simulate_gpu is None:
        return cli.main(args)
    from app.gpucheck.standin import simulated_gpu

    major, _, minor = ns.simulate_gpu.partition(".")
    with simulated_gpu((int(major), int(minor or 0)), incr_every_n_steps=ns.scaler_incr_every):
        return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
