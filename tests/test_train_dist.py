"""Two CPU processes under ``python -m paddle.distributed.launch`` (gloo): what docs/distributed.md promises.

Rank 0 alone writes checkpoints, the ranks end with bit-identical parameters, two processes of batch 8
match one process of batch 16, a SIGTERM (to the launcher or to one rank) stops every rank at the same
step, and the same command resumes exactly. Also the launch environment parsing and its errors.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.errors import ConfigError
from app.train.dist import Dist, init_dist, world_from_env
from tests.signal_helpers import launch_overrides
from tests.train_helpers import (
    ROOT,
    assert_same_tensors,
    clean_env,
    final_model,
    run_inprocess,
    tiny_overrides,
)

VENV_BIN = Path(sys.executable).parent
#: A glog line of Paddle's C++ code: severity letter, MMDD, time.
GLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")

#: 2 x batch 8 = global batch 16, the same as the 1-process reference; dropout off so the two agree.
DIST = {"train.batch_size": 8, "task.options.dropout": 0.0, "schedule.total_steps": 40,
        "checkpoint.every_steps": 10, "train.eval_every_steps": 15}  # fmt: skip


def _launch(overrides: list[str], log_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(log_dir), str(VENV_BIN / "warmstart"), "train", "-c", "configs/demo.yaml",
           *[a for o in overrides for a in ("--set", o)]]  # fmt: skip
    out = (log_dir.parent / f"{log_dir.name}.out").open("w")
    return subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=out, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log_dir: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(_worker_logs(log_dir)) from None


def _worker_logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(log_dir.glob("workerlog.*")))


def _records(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()]


def _events(log: Path, name: str) -> list[dict]:
    return [r for r in _records(log) if r.get("event") == name]


def _wait_for_step(proc: subprocess.Popen, log: Path, step: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the launch ended before the step"
        if log.exists() and any(r.get("kind") == "train" and r["step"] >= step for r in _records(log)):
            return
        time.sleep(0.02)
    raise AssertionError(f"no step {step} in {log} within {timeout}s")


def _rank_of(pid: int) -> int:
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(e for e in env if e.startswith(b"PADDLE_TRAINER_ID=")).split(b"=", 1)[1])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- the launch environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Dist(1, 0)),
        ({"PADDLE_TRAINERS_NUM": "1", "PADDLE_TRAINER_ID": "0"}, Dist(1, 0)),
        ({"PADDLE_TRAINERS_NUM": "2", "PADDLE_TRAINER_ID": "1"}, Dist(2, 1)),
        ({"PADDLE_GLOBAL_SIZE": "4", "PADDLE_GLOBAL_RANK": "3"}, Dist(4, 3)),  # the 2.6 launcher sets both
        ({"PADDLE_TRAINERS_NUM": "2", "PADDLE_GLOBAL_RANK": "0"}, Dist(2, 0)),
    ],
)
def test_world_from_env(env, expected):
    assert world_from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PADDLE_TRAINERS_NUM": "two"}, "PADDLE_TRAINERS_NUM='two' is not an integer"),
        ({"PADDLE_TRAINERS_NUM": "0"}, "PADDLE_TRAINERS_NUM=0: the world size must be >= 1"),
        ({"PADDLE_TRAINERS_NUM": "2"}, "PADDLE_TRAINERS_NUM=2 but no rank is set"),
        ({"PADDLE_TRAINERS_NUM": "2", "PADDLE_TRAINER_ID": "2"}, "PADDLE_TRAINER_ID=2 is outside 0..1"),
    ],
)
def test_world_from_env_errors_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        world_from_env(env)


def test_missing_rank_zero_is_a_config_error_not_a_hang(monkeypatch, unused_port):
    for key, value in {"PADDLE_TRAINERS_NUM": "2", "PADDLE_TRAINER_ID": "1",
                       "PADDLE_MASTER": f"127.0.0.1:{unused_port}", "PADDLE_DISTRI_BACKEND": "gloo"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=f"rendezvous 127.0.0.1:{unused_port} did not answer within 1s"):
        init_dist(connect_timeout=1.0)
    assert time.monotonic() - t0 < 10


def test_incomplete_launch_environment_exits_2_with_the_reason(tmp_path):
    env = {**clean_env(), "PADDLE_TRAINERS_NUM": "2", "PADDLE_TRAINER_ID": "0"}
    cmd = [str(VENV_BIN / "warmstart"), "train", "-c", "configs/demo.yaml",
           *[a for o in tiny_overrides(tmp_path / "run", **DIST) for a in ("--set", o)]]  # fmt: skip
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("warmstart: config: could not join the process group as rank 0 of 2: ValueError: ")
    assert "PADDLE_CURRENT_ENDPOINT is needed" in last
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- two processes --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_train_like_one_with_twice_the_batch(tmp_path):
    ov = tiny_overrides(tmp_path / "run", **DIST)
    proc = _launch(ov, tmp_path / "launch")
    assert _finish(proc, tmp_path / "launch") == 0, _worker_logs(tmp_path / "launch")
    run = tmp_path / "run"

    # Rank 0 alone wrote checkpoints (and the run's log); rank 1 wrote only its own log.
    assert _files(run / "rank1") == ["log.jsonl"]
    saves = [r["step"] for r in _events(run / "log.jsonl", "checkpoint")]
    assert saves == [10, 15, 20, 30, 40]  # every_steps 10, plus new bests at the step-15/30 evals
    assert not _events(run / "rank1" / "log.jsonl", "checkpoint")
    state = json.loads((run / "checkpoints" / "step-00000040" / "trainer_state.json").read_text())
    assert (state["world_size"], state["micro_batch"], state["global_batch"]) == (2, 8, 16)

    # Both ranks ended with bit-identical parameters (checked in the run and logged by each rank).
    done0, done1 = _events(run / "log.jsonl", "done")[0], _events(run / "rank1" / "log.jsonl", "done")[0]
    assert len(done0["params_sha256"]) == 64
    assert done0["params_sha256"] == done1["params_sha256"]

    # Gradients are averaged over the ranks: 2 x 8 is the same optimisation as 1 x 16, up to float
    # summation order (the mean over 16 vs the mean of two means of 8).
    ref = tiny_overrides(tmp_path / "ref", **{**DIST, "train.batch_size": 16})
    assert run_inprocess(ref)[0] == 0
    assert os.listdir(run / "checkpoints") and sorted(os.listdir(run / "checkpoints")) == sorted(
        os.listdir(tmp_path / "ref" / "checkpoints")
    )
    two, one = final_model(ov), final_model(ref)
    assert sorted(two) == sorted(one)
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-5, err_msg=key)
    # ...and the logged loss is the mean over both ranks, so the curves agree too.
    loss2 = {r["step"]: r["loss"] for r in _records(run / "log.jsonl") if r["kind"] == "train"}
    loss1 = {r["step"]: r["loss"] for r in _records(tmp_path / "ref" / "log.jsonl") if r["kind"] == "train"}
    assert sorted(loss2) == sorted(loss1) == list(range(1, 41))
    np.testing.assert_allclose([loss2[k] for k in loss1], list(loss1.values()), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_both_ranks_and_the_same_command_resumes_exactly(
    tmp_path, two_process_reference
):
    ov = launch_overrides(tmp_path / "run")
    log = tmp_path / "run" / "log.jsonl"
    proc = _launch(ov, tmp_path / "launch1")
    _wait_for_step(proc, log, 30)
    proc.send_signal(signal.SIGTERM)
    # The 2.6 launcher forwards SIGTERM to every worker and then exits with the signal number, not 143.
    assert _finish(proc, tmp_path / "launch1") == 15, _worker_logs(tmp_path / "launch1")
    stopped = _events(log, "preempted")[0]["step"]
    assert 30 <= stopped < 300
    assert _events(tmp_path / "run" / "rank1" / "log.jsonl", "preempted")[0]["step"] == stopped
    for worker in ("workerlog.0", "workerlog.1"):
        # Paddle's C++ threads may log (glog: "I1201 00:55:13.4 ... tcp_store.cc") after our last line
        ours = [ln for ln in (tmp_path / "launch1" / worker).read_text().splitlines() if not GLOG.match(ln)]
        tail = ours[-1]
        assert tail.startswith(f"warmstart: preempted: stopped at step {stopped} "), (worker, tail)
    assert f"step-{stopped:08d}" in os.listdir(tmp_path / "run" / "checkpoints")

    proc = _launch(ov, tmp_path / "launch2")
    assert _finish(proc, tmp_path / "launch2") == 0, _worker_logs(tmp_path / "launch2")
    assert _events(log, "resume")[0]["step"] == stopped
    assert _events(tmp_path / "run" / "rank1" / "log.jsonl", "resume")[0]["step"] == stopped

    ref = two_process_reference  # the same settings launched through `warmstart launch`, never stopped
    assert_same_tensors(final_model(ov), final_model(launch_overrides(ref)))
    assert _events(log, "done")[0]["params_sha256"] == _events(ref / "log.jsonl", "done")[0]["params_sha256"]


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    ov = launch_overrides(tmp_path / "run")
    proc = _launch(ov, tmp_path / "launch")
    _wait_for_step(proc, tmp_path / "run" / "log.jsonl", 30)
    workers = [int(p) for p in subprocess.check_output(["pgrep", "-P", str(proc.pid)]).split()]
    ranks = {_rank_of(pid): pid for pid in workers}
    assert sorted(ranks) == [0, 1]
    os.kill(ranks[1], signal.SIGTERM)
    # A worker's 143 ends the launch with 143 (after the barrier: rank 0 has committed by then).
    assert _finish(proc, tmp_path / "launch") == 143, _worker_logs(tmp_path / "launch")
    p0 = _events(tmp_path / "run" / "log.jsonl", "preempted")[0]
    p1 = _events(tmp_path / "run" / "rank1" / "log.jsonl", "preempted")[0]
    assert p0["step"] == p1["step"]
    assert (p0["reason"], p1["reason"]) == ("another rank was asked to stop", "signal SIGTERM")
    ckpt = tmp_path / "run" / "checkpoints" / f"step-{p0['step']:08d}"
    assert (ckpt / "manifest.json").exists()
