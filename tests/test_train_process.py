"""The trainer as a real process: spot notices, the container entrypoint on S3, CLI exit codes (real SIGTERMs
for every task kind: test_preempt_signals.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import boto3
import pytest

from tests.train_helpers import (
    ROOT,
    clean_env,
    run_inprocess,
    tiny_overrides,
)

VENV_BIN = Path(sys.executable).parent


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _wait_for_step(proc: subprocess.Popen, log: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"trainer exited early: {proc.stderr.read()}"
        if log.exists():
            steps = [json.loads(x).get("step", 0) for x in log.read_text().splitlines() if '"train"' in x]
            if steps and steps[-1] >= step:
                return
        time.sleep(0.02)
    raise AssertionError("trainer did not reach the step in time")


def _events(log: Path, name: str) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r.get("event") == name]


LONG = {"schedule.total_steps": 1500, "schedule.warmup.steps": 20, "checkpoint.every_steps": 50,
        "train.eval_every_steps": 100}  # fmt: skip


class _GcpMetadata(BaseHTTPRequestHandler):
    """Answers FALSE until the watched run has logged a training step at or past ``after_step``."""

    log: Path | None = None
    after_step = 20

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("Metadata-Flavor") != "Google":
            self.send_response(403)
            self.end_headers()
            return
        log = type(self).log
        trained = (
            log is not None
            and log.exists()
            and any(
                json.loads(x).get("step", 0) >= type(self).after_step
                for x in log.read_text().splitlines()
                if '"train"' in x
            )
        )
        body = b"TRUE" if trained else b"FALSE"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_spot_notice_triggers_the_preemption_path(tmp_path):
    _GcpMetadata.log = tmp_path / "log.jsonl"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GcpMetadata)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        ov = tiny_overrides(
            tmp_path, **{**LONG, "schedule.total_steps": 5000, "preempt.spot.interval_s": 0.05}
        )
        env = clean_env(
            WARMSTART_SPOT_PROVIDER="gcp", WARMSTART_SPOT_ENDPOINT=f"http://127.0.0.1:{server.server_port}"
        )
        proc = subprocess.run([str(VENV_BIN / "warmstart"), "train", "-c", "configs/demo.yaml", *_sets(ov)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        server.shutdown()
    assert proc.returncode == 143, proc.stderr
    pre = _events(tmp_path / "log.jsonl", "preempted")
    assert len(pre) == 1 and "gcp" in pre[0]["reason"].lower()
    assert 20 <= pre[0]["step"] < 5000
    assert (tmp_path / "checkpoints" / f"step-{pre[0]['step']:08d}" / "manifest.json").exists()


def test_entrypoint_env_only_fetch_resume_publish_on_s3(tmp_path, s3_server, s3_bucket):
    run_dir = tmp_path / "container"
    env = clean_env(
        WARMSTART_CONFIG=str(ROOT / "configs/demo.yaml"),
        WARMSTART_RUN_DIR=str(run_dir),
        WARMSTART_CHECKPOINT_URI=f"s3://{s3_bucket}/jobs/digits",
        WARMSTART_S3_ENDPOINT_URL=s3_server,
        WARMSTART_S3_ADDRESSING_STYLE="path",
        WARMSTART_TOTAL_STEPS="400",
        WARMSTART_ARGS="--set train.batch_size=16 --set task.options.width=4 --set checkpoint.every_steps=20 "
        "--set train.progress_bar=off --set schedule.warmup.steps=10",
    )
    proc = _start([str(ROOT / "entrypoint")], env)
    _wait_for_step(proc, run_dir / "log.jsonl", 30)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    stopped = _events(run_dir / "log.jsonl", "preempted")[0]["step"]

    # A replacement container: a fresh local disk, the same env. It must fetch from S3 and resume.
    import shutil

    shutil.rmtree(run_dir)
    done = subprocess.run([str(ROOT / "entrypoint")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resume = _events(run_dir / "log.jsonl", "resume")[0]
    assert resume["step"] == stopped
    assert resume["source"] == f"s3://{s3_bucket}/jobs/digits/step-{stopped:08d}"
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_server).list_objects_v2(
        Bucket=s3_bucket, Prefix="jobs/digits/step-00000400/")["Contents"]]  # fmt: skip
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == [
        "manifest.json",
        "meta.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]


@pytest.mark.parametrize(("reference", "lr16", "lr32"), [(16, 0.003, 0.006), (64, 0.00075, 0.0015)])
def test_changed_batch_on_resume_rescales_lr_and_keeps_sample_position(
    tmp_path, caplog, reference, lr16, lr32
):
    ov = tiny_overrides(
        tmp_path, **{"schedule.scaling.lr_rule": "linear", "schedule.scaling.reference_batch": reference}
    )
    rc, first = run_inprocess(ov, stop_at=10)
    assert rc == 143
    assert first.stream.state() == {"epoch": 0, "samples_in_epoch": 160}
    assert first.schedule.base_lr == pytest.approx(lr16)
    rc, second = run_inprocess(ov + ["train.batch_size=32"], stop_at=11)
    assert rc == 143
    assert second.schedule.base_lr == pytest.approx(lr32)  # linear rule: 0.003 x 32/reference
    assert second.stream.state() == {"epoch": 0, "samples_in_epoch": 192}
    assert "global batch changed since the checkpoint: 16 -> 32" in caplog.text


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--config", "nope.yaml"], 2, "warmstart: config: config file 'nope.yaml' does not exist"),
        (["--config", "configs/demo.yaml", "--set", "schedule.warmup.stpes=3"], 2,
         "did you mean 'steps'?"),
        (["--config", "configs/demo.yaml", "--set", "init.from=/does/not/exist"], 4, "/does/not/exist"),
        (["--config", "configs/demo.yaml", "--set", "checkpoint.uri=gs://bucket/x"], 2, "gs://bucket/x"),
    ],
)  # fmt: skip
def test_train_user_errors_are_one_line_with_exit_code(tmp_path, args, code, text):
    proc = subprocess.run([str(VENV_BIN / "warmstart"), "train", *args, "--set", f"run.dir={tmp_path}"],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    error_lines = [x for x in proc.stderr.splitlines() if x.startswith("warmstart: ")]
    assert len(error_lines) == 1 and text in error_lines[0]


def test_diverging_loss_stops_with_a_task_error(tmp_path):
    from app.errors import TaskError

    ov = tiny_overrides(
        tmp_path, **{"optim.name": "sgd", "schedule.base_lr": 1000, "schedule.warmup.kind": "none"}
    )
    with pytest.raises(TaskError, match=r"loss is (nan|inf) at step \d+"):
        run_inprocess(ov)


def test_changed_batch_without_reference_scales_from_the_checkpoint_batch(tmp_path):
    ov = tiny_overrides(tmp_path)
    assert run_inprocess(ov, stop_at=10)[0] == 143
    rc, second = run_inprocess(ov + ["train.batch_size=64", "schedule.scaling.lr_rule=sqrt"], stop_at=11)
    assert rc == 143
    assert second.schedule.base_lr == pytest.approx(0.003 * 2.0)  # sqrt(64 / 16) from the checkpoint's batch
