"""Hypothesis profiles for the fuzz suite and the figures file it leaves for ``make faults``.

``ci`` (the default, part of ``make test``): derandomized, so every run tries the same inputs, and sized
to stay well under a minute on 2 cores. ``long`` (``WS_FUZZ_PROFILE=long``, what ``make faults`` sets):
thousands of examples per target, drawn afresh each run (a failure prints the blob that replays it).
Each test sets its number of examples with :func:`tests.fuzz.harness.budget` (small in ``ci``, 1000 in
``long``); ``WS_FUZZ_EXAMPLES=N`` overrides it. ``WS_FUZZ_COLLECT=1`` records every failure instead of stopping
at the first (``make faults`` sets it, so the figures list all of them). To list every distinct failure of
a run: ``WS_FUZZ_COLLECT=1 WS_FAULTS_RESULTS=DIR pytest tests/fuzz``, then read ``DIR/fuzz.json``
(``failures``: target | kind | signature -> count, first message, first input).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from app.checkpoint.layout import CheckpointRef
from app.checkpoint.tags import promote
from app.store import open_store
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


#: The fixture run's newest step (the one the store fuzz rewrites) and the step tagged ``v1``.
NEWEST = "step-00000003"
TAGGED = 2


@pytest.fixture(scope="session")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A committed root of a real tiny run, its tag, and the live session to restore resumes into."""
    from app.train.start import prepare  # noqa: F401  (paddle import before the first case, not inside)
    from tests.train_helpers import run_inprocess, tiny_overrides

    run_dir = tmp_path_factory.mktemp("fuzz-run")
    extra = {"schedule.total_steps": 3, "schedule.warmup.steps": 1, "checkpoint.every_steps": 1,
             "checkpoint.async_save": "false", "checkpoint.keep_last": "null", "train.eval_every_steps": 2}  # fmt: skip
    rc, session = run_inprocess(tiny_overrides(run_dir, **extra))
    assert rc == 0
    root = run_dir / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-00000001", "step-00000002", "step-00000003"]
    key = f"step-{TAGGED:08d}"
    digest = hashlib.sha256((root / key / "manifest.json").read_bytes()).hexdigest()
    promote(open_store(str(root), None), CheckpointRef(TAGGED, str(root / key), digest, key), "v1")
    return {"root": root, "session": session}


def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ANN001, ARG001
    path = write_results()
    if path is not None:
        print(f"\nfuzz figures written to {path}")
