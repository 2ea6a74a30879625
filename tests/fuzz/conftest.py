"""Hypothesis profiles for the fuzz suite and the figures file it leaves for ``make faults``.

``ci`` (the default, part of ``make test``): derandomized, so every run tries the same inputs, and sized
to stay well under a minute on 2 cores. ``long`` (``WS_FUZZ_PROFILE=long``, what ``make faults`` sets):
thousands of examples per target, drawn afresh each run (a failure prints the blob that replays it).
Each test sets its number of examples with :func:`tests.fuzz.harness.budget` (small in ``ci``, 1000 in
``long``); ``WS_FUZZ_EXAMPLES=N`` overrides it. ``WS_FUZZ_COLLECT=1`` records every failure instead of stopping
at the first (``make faults`` sets it, so the figures list all of them).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

from tests.fuzz.harness import write_results

#: In make test a failure is reported as drawn: shrinking would re-run every reader hundreds of times.
_NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target)
_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                              HealthCheck.data_too_large, HealthCheck.filter_too_much],
}  # fmt: skip
settings.register_profile("ci", derandomize=True, phases=_NO_SHRINK, **_COMMON)
settings.register_profile("long", derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("WS_FUZZ_PROFILE", "ci"))


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ANN001, ARG001
    path = write_results()
    if path is not None:
        print(f"\nfuzz figures written to {path}")
