"""``python -m bench.child ARGS``: the ``warmstart`` CLI with the synthetic benchmark task registered.

Used for the benchmarks that need a real process (resume latency, SIGTERM): exactly ``app.cli.main``.
"""

from __future__ import annotations

import sys
import zlib  # noqa: F401  (before paddle)

import bench.synth  # noqa: F401  (registers task.kind bench_mlp)
from app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
