"""The image's entrypoint run on the host with only what a pod gets: env vars, credentials, an S3 endpoint.

A Kubernetes pod of deploy/k8s/job.yaml sees the WARMSTART_* variables from the manifest, the AWS keys from
the Secret, a scratch working directory and nothing from this repository's checkout. This test gives the
`entrypoint` exactly that against `moto_server` on loopback: the first pod warm-starts (`partial`) from
pretrained weights on S3 and publishes checkpoints; a SIGTERM mid-run (node drain, spot reclaim) saves and
exits 143; a replacement pod on a fresh disk resumes from S3 and finishes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.train_helpers import ROOT, run_inprocess

VENV_BIN = Path(sys.executable).parent
TOTAL = 90
# The pod's command-line tweaks for a fast CPU run (a real manifest would set these in the config file).
POD_ARGS = (
    "--set train.batch_size=16 --set task.options.width=4 --set checkpoint.every_steps=15 "
    "--set train.eval_every_steps=45 --set train.progress_bar=off --set train.log_every_steps=1 "
    "--set schedule.warmup.steps=9"
)


def _pretrain_on_s3(tmp_path: Path, s3_server: str, uri: str) -> None:
    """The 'pretrained weights': a tiny 5-class digits model, published to S3 by a cold-start run."""
    overrides = [
        f"run.dir={tmp_path / 'pretrain'}",
        f"checkpoint.uri={uri}",
        f"store.endpoint_url={s3_server}",
        "store.addressing_style=path",
        "schedule.total_steps=10",
        "schedule.warmup.steps=2",
        "checkpoint.every_steps=10",
        "train.batch_size=16",
        "train.eval_every_steps=10",
        "train.progress_bar=off",
        "task.options.width=4",
    ]
    rc, _ = run_inprocess(overrides, config="configs/digits_pretrain.yaml")
    assert rc == 0


def _pod_env(tmp_path: Path, s3_server: str, bucket: str) -> dict[str, str]:
    """Everything the pod gets, and nothing inherited from the test process."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "WARMSTART_CONFIG": str(ROOT / "configs/digits_finetune.yaml"),
        "WARMSTART_RUN_DIR": str(tmp_path / "pod/runs/ft"),
        "WARMSTART_CHECKPOINT_URI": f"s3://{bucket}/runs/digits-ft",
        "WARMSTART_INIT_FROM": f"s3://{bucket}/models/digits-base",
        "WARMSTART_TOTAL_STEPS": str(TOTAL),
        "WARMSTART_GRACE_SECONDS": "20",
        "WARMSTART_S3_ENDPOINT_URL": s3_server,
        "WARMSTART_S3_ADDRESSING_STYLE": "path",
        "WARMSTART_S3_REGION": "us-east-1",
        "WARMSTART_ARGS": POD_ARGS,
        "AWS_ACCESS_KEY_ID": "pod-key-id",
        "AWS_SECRET_ACCESS_KEY": "pod-secret",
    }


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]


def _events(run_dir: Path, name: str) -> list[dict]:
    return [r for r in _log(run_dir) if r.get("event") == name]


def _wait_for_train_step(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120) -> None:
    log = run_dir / "log.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the pod's trainer exited early: {proc.stderr.read()}"
        if log.exists():
            steps = [r["step"] for r in _log(run_dir) if r.get("kind") == "train"]
            if steps and steps[-1] >= step:
                return
        time.sleep(0.02)
    raise AssertionError(f"the pod's trainer did not reach step {step} in {timeout}s")


def _files_of(s3_server: str, bucket: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"][len(prefix) :] for o in objects)


def test_pod_warm_starts_from_s3_saves_on_sigterm_and_a_new_pod_resumes(tmp_path, s3_server, s3_bucket):
    _pretrain_on_s3(tmp_path, s3_server, f"s3://{s3_bucket}/models/digits-base")
    env = _pod_env(tmp_path, s3_server, s3_bucket)
    run_dir = Path(env["WARMSTART_RUN_DIR"])
    workdir = tmp_path / "pod"  # the pod's working directory: not the repository
    workdir.mkdir(exist_ok=True)
    entry = str(ROOT / "entrypoint")

    # Pod 1: no checkpoint at the run's URI yet, so it warm-starts from init.from on S3.
    pod1 = subprocess.Popen([entry], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_train_step(pod1, run_dir, 20)
    pod1.send_signal(signal.SIGTERM)  # what the kubelet sends at the start of terminationGracePeriodSeconds
    _, stderr1 = pod1.communicate(timeout=60)
    assert pod1.returncode == 143, stderr1

    warm = _events(run_dir, "warm_start")
    assert [(w["source"], w["mode"]) for w in warm] == [(f"s3://{s3_bucket}/models/digits-base", "partial")]
    report = json.loads((run_dir / "warmstart_report.json").read_text())
    assert sorted(report["ignored"]) == ["head.bias", "head.weight"]  # the 5-class head: trained fresh
    assert sorted(report["loaded"]) == [f"backbone.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    assert (report["missing"], report["mismatched"], report["loaded_fraction"]) == ([], [], 1.0)
    stopped = _events(run_dir, "preempted")[0]["step"]
    assert 20 <= stopped < TOTAL
    committed = [ln for ln in stderr1.splitlines() if ln.startswith("warmstart: preempted: ")]
    assert len(committed) == 1 and f"checkpoint step-{stopped:08d} committed" in committed[0]
    step_prefix = f"runs/digits-ft/step-{stopped:08d}/"
    assert _files_of(s3_server, s3_bucket, step_prefix) == [
        "manifest.json", "meta.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
    ]  # fmt: skip

    # Pod 2: a replacement on a fresh disk with the same environment resumes from S3 and finishes.
    import shutil

    shutil.rmtree(workdir)
    workdir.mkdir()
    done = subprocess.run([entry], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _events(run_dir, "warm_start") == []  # resumed, not warm-started again
    resume = _events(run_dir, "resume")
    assert [(r["step"], r["source"]) for r in resume] == [
        (stopped, f"s3://{s3_bucket}/runs/digits-ft/step-{stopped:08d}")
    ]
    assert [r["step"] for r in _log(run_dir) if r.get("kind") == "train"][0] == stopped + 1
    final = f"runs/digits-ft/step-{TOTAL:08d}/"
    assert "manifest.json" in _files_of(s3_server, s3_bucket, final)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    state = json.loads(client.get_object(Bucket=s3_bucket, Key=final + "trainer_state.json")["Body"].read())
    assert state["step"] == TOTAL
