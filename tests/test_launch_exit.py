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
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.train import rankexit
from tests.signal_helpers import (
    LAUNCH_LONG,
    TIMEOUT_S,
    VENV_BIN,
    events,
    sets,
    slow_rank_env,
    start,
    stop,
    train_cmd,
    trained_to,
    wait_until,
)
from tests.train_helpers import ROOT, tiny_overrides

CASES = {
    "rank0-interpreter-shutdown": ("0@exit=3", 1, signal.SIGTERM),
    "rank0-joining-data-worker-past-3s": ("0@app.train.batches:WorkerPool.close=8", 1, signal.SIGTERM),
    "rank0-waiting-for-upload-no-workers-sigint": ("0@app.commands.train:_close=8", 0, signal.SIGINT),
    "rank1-interpreter-shutdown-no-workers": ("1@exit=3", 0, signal.SIGTERM),
    "rank0-mid-save-rank1-waiting-for-its-commit": (
        "0@app.checkpoint.manager:CheckpointManager.flush=8",
        1,
        signal.SIGTERM,
    ),
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


def _says(path: Path, line: str) -> Callable[[], bool]:
    return lambda: path.exists() and f"{line}\n" in path.read_text()


def _rank_pid(launch: int, rank: str) -> int:
    import psutil

    for proc in psutil.Process(launch).children(recursive=True):
        try:
            if (
                proc.environ().get("PADDLE_TRAINER_ID") == rank
                and "paddle.distributed.launch" not in proc.cmdline()
            ):
                return proc.pid
        except psutil.Error:
            pass
    raise AssertionError(f"no process of rank {rank}")


def _pending(pid: int, signum: int) -> bool:
    """``signum`` is pending in ``pid`` (/proc status SigPnd: its main thread, ShdPnd: the process)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return any(int(fields[k], 16) >> (signum - 1) & 1 for k in ("SigPnd", "ShdPnd"))


def test_a_stop_while_a_rank_is_still_starting_ends_the_launch_with_143(tmp_path: Path) -> None:
    """Rank 1 is held in its start-up imports (signals held) when the stop comes, while rank 0 waits for it
    to join the process group; rank 1 then leaves with 143 (it had not started), and the launcher stops
    rank 0, which cannot leave that wait (SIGKILL after 3 s; nothing had been trained). The launcher
    exits 247; the launch must exit 143."""
    run_dir, log_dir, release = tmp_path / "run", tmp_path / "log", tmp_path / "release"
    over = tiny_overrides(run_dir, **LAUNCH_LONG)
    cmd = [str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "2", "--log-dir", str(log_dir),
           "--", "train", "-c", str(ROOT / "configs/demo.yaml"), *sets(over)]  # fmt: skip
    proc = start(cmd, env=slow_rank_env(f"1@app.cli:build_parser={release},0@app.train.dist:init_dist=0"))
    wait_until(proc, _says(log_dir / "workerlog.1", "slow 1 app.cli:build_parser"), "rank 1 held")
    wait_until(proc, _says(log_dir / "workerlog.0", "slow 0 app.train.dist:init_dist"), "rank 0 joining")
    proc.send_signal(signal.SIGTERM)
    rank1 = _rank_pid(proc.pid, "1")
    wait_until(proc, lambda: _pending(rank1, signal.SIGTERM), "the SIGTERM forwarded to rank 1 (held there)")
    release.touch()  # rank 1 goes on, meets the pending SIGTERM and leaves
    _, err = proc.communicate(timeout=TIMEOUT_S)
    code = proc.returncode
    assert code == 143, err[-3000:]
    assert "rank 1 exited 143" in err and "the launcher exited 247" in err, err[-3000:]
    assert not events(run_dir / "log.jsonl", "checkpoint")  # nothing trained, nothing saved


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_while_warmstart_shuts_down_keeps_its_exit_code(tmp_path: Path, signum: int) -> None:
    """A plain ``warmstart train``: stopped once (143), then the same signal again while the interpreter
    shuts down (a second `kill`, a launcher's teardown). It used to meet the restored default action:
    SIGTERM killed the process (-15), SIGINT broke off its shutdown with a KeyboardInterrupt."""
    marks, release = tmp_path / "slow.log", tmp_path / "release"
    env = slow_rank_env(f"*@exit={release}")
    env["WS_TEST_SLOW_LOG"] = str(marks)
    over = tiny_overrides(
        tmp_path / "run", **{"schedule.total_steps": 100000, "checkpoint.every_steps": 1000}
    )
    proc = start(train_cmd("configs/demo.yaml", over), env=env)
    wait_until(proc, trained_to(tmp_path / "run" / "log.jsonl", 3), "step 3")
    proc.send_signal(signum)
    wait_until(proc, _says(marks, "slow * exit"), "interpreter shutdown")
    proc.send_signal(signum)
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None and _pending(proc.pid, signum) and time.monotonic() < deadline:
        time.sleep(0.02)  # until it was delivered (or the process died of it)
    release.touch()
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 143, err[-3000:]
    assert "slow * exit done\n" in marks.read_text(), err[-3000:]
    assert "Traceback" not in err, err[-3000:]


@pytest.mark.parametrize(
    "launcher, ranks, expected",
    [
        (0, {0: 143, 1: 143}, 143),  # preempted ranks exit 0 to the launcher
        (0, {0: 0, 1: 0}, 0),
        (0, {}, 0),  # nothing recorded (an older rank, or a folder that could not be written)
        (247, {1: 143}, 143),  # rank 1 stopped in start-up; the launcher SIGKILLed rank 0 waiting for it
        (241, {0: 143, 1: 143}, 143),
        (247, {1: 5}, 5),  # rank 1 failed; rank 0 was ended by the launcher because of it
        (247, {0: 143, 1: 3}, 3),  # a failure wins over a preemption
        (247, {}, 247),  # nobody recorded why
        (250, {1: 143}, 250),  # SIGABRT is not the launcher's teardown (the lost-peer check looks at it)
        (143, {0: 143}, 143),
        (5, {0: 5, 1: 143}, 5),
        (130, {0: 130}, 130),
    ],
)
def test_the_launch_code_from_the_launcher_and_the_ranks(launcher: int, ranks: dict, expected: int) -> None:
    assert rankexit.launch_code(launcher, ranks) == expected
