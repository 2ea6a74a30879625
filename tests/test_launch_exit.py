"""Every rank of a ``warmstart launch`` ends on its own after a stop, whichever finishes first.

Paddle's launcher answers the first rank that exits non-zero by sending SIGTERM to the others (up to 3
times, 0.2 s apart) and SIGKILL 3 s later, and exits with the first non-zero code in rank order
(``-15`` becomes 241, ``-9`` 247). So a rank still busy after its preemption exit began (committing,
joining its data workers, waiting for an upload, shutting the interpreter down) used to die of it. Here
one rank is made slower at one of those places (tests/slow_exit), the launch gets a real signal, and each
rank must exit 143 itself and the launch 143.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.signal_helpers import (
    LAUNCH_LONG,
    VENV_BIN,
    events,
    sets,
    slow_rank_env,
    start,
    stop,
    trained_to,
    wait_until,
)
from tests.train_helpers import ROOT, tiny_overrides

CASES = {
    "rank0-interpreter-shutdown": ("0@exit=3", 1, signal.SIGTERM),
    "rank0-joining-data-worker-past-3s": ("0@app.train.batches:WorkerPool.close=8", 1, signal.SIGTERM),
    "rank0-waiting-for-upload-no-workers-sigint": ("0@app.commands.train:_close=8", 0, signal.SIGINT),
    "rank1-interpreter-shutdown-no-workers": ("1@exit=3", 0, signal.SIGTERM),
}


@pytest.mark.parametrize("slow, workers, signum", list(CASES.values()), ids=list(CASES))
def test_a_slower_rank_is_not_killed_when_the_other_has_exited(
    tmp_path: Path, slow: str, workers: int, signum: int
) -> None:
    run_dir, log_dir = tmp_path / "run", tmp_path / "log"
    over = tiny_overrides(run_dir, **LAUNCH_LONG, **{"train.data_workers": workers})
    cmd = [str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "2", "--log-dir", str(log_dir),
           "--", "train", "-c", str(ROOT / "configs/demo.yaml"), *sets(over)]  # fmt: skip
    proc = start(cmd, env=slow_rank_env(slow))
    wait_until(proc, trained_to(run_dir / "log.jsonl", 3), "step 3")
    code, err = stop(proc, signum)
    rank = slow.split("@")[0]
    logs = {p.name: p.read_text() for p in log_dir.glob("workerlog.*")}
    where = slow.split("@")[1].split("=")[0]
    log = logs[f"workerlog.{rank}"]
    assert f"slow {rank} {where}\n" in log, logs  # the hook did make that rank slower
    assert f"slow {rank} {where} done\n" in log, log[-3000:]  # and no signal ended it meanwhile
    assert code == 143, err[-3000:]
    assert len(events(run_dir / "log.jsonl", "preempted")) == 1
    assert "rank 0 exited 143" in err and "rank 1 exited 143" in err, err[-3000:]
