"""Benchmarks: checkpoint stall, transfer, resume latency and training outcomes, measured side by side.

``python -m bench.run`` (``make bench``) writes ``bench/results.json`` and regenerates
``docs/benchmarks.md`` with :mod:`bench.report`; ``--quick`` runs every figure at tiny sizes.
"""

__all__: list[str] = []
