"""Hypothesis profiles for the fuzz suite and the figures file it leaves for ``make faults``.

``ci`` (the default, part of ``make test``): derandomized, so every run tries the same inputs, and sized
to stay well under a minute on 2 cores. ``long`` (``WS_FUZZ_PROFILE=long``, what ``make faults`` sets):
thousands of examples per target, drawn afresh each run (a failure prints the blob that replays it).
``WS_FUZZ_EXAMPLES=N`` overrides the number of examples of either profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.fuzz.harness import write_results

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                              HealthCheck.data_too_large, HealthCheck.filter_too_much],
}  # fmt: skip
settings.register_profile("ci", max_examples=int(os.environ.get("WS_FUZZ_EXAMPLES", "0")) or 40,
                          derandomize=True, **_COMMON)  # fmt: skip
settings.register_profile("long", max_examples=int(os.environ.get("WS_FUZZ_EXAMPLES", "0")) or 2000,
                          derandomize=False, **_COMMON)  # fmt: skip
settings.load_profile(os.environ.get("WS_FUZZ_PROFILE", "ci"))


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ANN001, ARG001
    path = write_results()
    if path is not None:
        print(f"\nfuzz figures written to {path}")
