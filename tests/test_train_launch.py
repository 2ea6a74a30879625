"""`warmstart launch`: SIGTERM to the supervisor stops both workers at one step, exit 143, resume works."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.train_helpers import ROOT, clean_env, tiny_overrides

VENV_BIN = Path(sys.executable).parent
LONG = {"train.batch_size": 8, "schedule.total_steps": 800, "checkpoint.every_steps": 50,
        "train.eval_every_steps": 200, "task.options.dropout": 0.0}  # fmt: skip


def _cmd(run_dir: Path, log_dir: Path) -> list[str]:
    sets = [a for o in tiny_overrides(run_dir, **LONG) for a in ("--set", o)]
    return [str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "2", "--log-dir", str(log_dir),
            "--", "train", "-c", str(ROOT / "configs/demo.yaml"), *sets]  # fmt: skip


def _events(log: Path, name: str) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("event") == name]


def test_sigterm_to_launch_exits_143_with_a_committed_checkpoint_and_resumes(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run" / "log.jsonl"
    proc = subprocess.Popen(_cmd(run_dir, tmp_path / "l1"), cwd=ROOT, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        if log.exists() and any(
            '"train"' in x and json.loads(x)["step"] >= 30 for x in log.read_text().splitlines()
        ):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "SIGTERM: forwarded to" in err
    (stopped,) = [e["step"] for e in _events(log, "preempted")]
    assert 30 <= stopped < 800
    assert (run_dir / "checkpoints" / f"step-{stopped:08d}" / "manifest.json").exists()
    rank1 = _events(run_dir / "rank1" / "log.jsonl", "preempted")
    assert [e["step"] for e in rank1] == [stopped]  # both ranks stopped at the same step

    again = subprocess.run(
        _cmd(run_dir, tmp_path / "l2"), cwd=ROOT, env=clean_env(), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert [e["step"] for e in _events(log, "resume")] == [stopped]
    assert _events(log, "done")[-1]["step"] == 800


def test_launch_without_a_command_is_a_usage_error(capsys):
    from app.cli import main

    assert main(["launch", "--nproc-per-node", "2"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "warmstart: config: warmstart launch: nothing to run (add -- train -c FILE)"
    )
