"""`warmstart launch`: SIGTERM to the supervisor stops both workers at one step, exit 143, and the resumed run
ends bit-identical to an uninterrupted one; a SIGTERM before the workers can take it is kept for them."""

from __future__ import annotations

import subprocess
import time

import psutil

from tests.signal_helpers import (
    committed_steps,
    events,
    launch_cmd,
    launch_overrides,
    start,
    stop,
    trained_to,
    wait_until,
)
from tests.train_helpers import ROOT, assert_same_tensors, clean_env, final_model

BEFORE_START = "warmstart: preempted before training started, nothing to save (signal SIGTERM); run the same command again"


def test_sigterm_to_launch_exits_143_with_a_committed_checkpoint_and_resumes_exactly(
    tmp_path, two_process_reference
):
    run_dir, log = tmp_path / "run", tmp_path / "run" / "log.jsonl"
    proc = start(launch_cmd(run_dir, tmp_path / "l1"))
    wait_until(proc, trained_to(log, 30), "step 30")
    code, err = stop(proc)
    assert code == 143, err[-3000:]
    assert "SIGTERM: forwarded to 2 worker process(es)" in err
    (stopped,) = [e["step"] for e in events(log, "preempted")]
    assert 30 <= stopped < 300
    assert committed_steps(run_dir / "checkpoints")[-1] == stopped
    rank1 = events(run_dir / "rank1" / "log.jsonl", "preempted")
    assert [e["step"] for e in rank1] == [stopped]  # both ranks stopped at the same step

    again = subprocess.run(
        launch_cmd(run_dir, tmp_path / "l2"), cwd=ROOT, env=clean_env(), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert [e["step"] for e in events(log, "resume")] == [stopped]
    assert events(log, "done")[-1]["step"] == 300

    ref = two_process_reference
    assert_same_tensors(final_model(launch_overrides(run_dir)), final_model(launch_overrides(ref)))
    assert events(log, "done")[-1]["params_sha256"] == events(ref / "log.jsonl", "done")[0]["params_sha256"]


def _workers_started(pid: int) -> bool:
    """The launcher (``paddle.distributed.launch``) runs and has started its 2 workers. Counting any 3
    descendants is not enough: imports in the supervisor itself can run short-lived helper processes."""
    try:
        for child in psutil.Process(pid).children(recursive=True):
            if "paddle.distributed.launch" in " ".join(child.cmdline()):
                return len(child.children()) >= 2
    except psutil.Error:  # a child that ended while being listed
        return False
    return False


def test_sigterm_before_the_workers_can_take_it_is_forwarded_once_they_can(tmp_path):
    """Sent as soon as the launcher has started the workers (Pythons still starting, which a SIGTERM would
    kill): the supervisor keeps it until each worker catches SIGTERM, and every worker exits 143."""
    run_dir = tmp_path / "run"
    proc = start(launch_cmd(run_dir, tmp_path / "l1"))
    deadline = time.monotonic() + 120
    while not _workers_started(proc.pid) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.005)
    code, err = stop(proc)
    assert code == 143, err[-3000:]
    assert "SIGTERM: forwarded to" in err
    for worker in ("workerlog.0", "workerlog.1"):
        text = (tmp_path / "l1" / worker).read_text()
        assert "Traceback" not in text
        assert text.strip().splitlines()[-1] == BEFORE_START
    assert committed_steps(run_dir / "checkpoints") == []


def test_launch_without_a_command_is_a_usage_error(capsys):
    from app.cli import main

    assert main(["launch", "--nproc-per-node", "2"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "warmstart: config: warmstart launch: nothing to run (add -- train -c FILE)"
    )


def test_the_launcher_runs_in_its_own_session_so_a_terminal_ctrl_c_reaches_the_workers_once(monkeypatch):
    """A Ctrl-C goes to the terminal's whole foreground process group; if the launcher and workers were
    in it, each worker would get SIGINT three times, and a second SIGINT means "interrupt, do not save"."""
    import signal
    import sys

    from app.train import supervise

    script = "import os, sys; sys.exit(0 if os.getsid(0) != os.getsid(os.getppid()) else 1)"
    monkeypatch.setattr(supervise, "launch_command", lambda *_: [sys.executable, "-c", script])
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert supervise.supervise(2, "log", ["train"]) == 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
