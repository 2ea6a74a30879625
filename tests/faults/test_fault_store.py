"""Object-store faults under a real training run: a fault-injecting proxy in front of moto_server.

About 10 % of requests get a 500 InternalError, a 503 SlowDown, a connection reset or a stall past the
read timeout. The run must finish, every published checkpoint must verify with ``warmstart ckpt verify``,
the retries must be in the log, and the parameters must equal an undisturbed run's. A store that goes
down for good fails the run with exit 3 and one line, keeping the staged checkpoint on local disk.
The same run is scanned for its (distinctive, fake) credentials: they must appear nowhere.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import pytest

from app.checkpoint.tensorio import read_tensors
from tests.conftest import s3_client
from tests.fault_proxy import Fault, FaultProxy, Seen, error, reset, slow_down
from tests.faults.harness import (
    ROOT,
    TOTAL,
    VENV_BIN,
    base_overrides,
    clean_env,
    load_step,
    record,
    reference,
    rng_for,
    sets,
)

STALL_S = 1.6
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wsFaultSuiteSecret/Do-Not-Leak+91f3c0a7e2",
    "AWS_SESSION_TOKEN": "wsFaultSuiteSessionToken0d4b8a1c9e",
    "OSS_ACCESS_KEY_SECRET": "wsFaultSuiteOssSecret5e7a2b",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "wsFaultSuiteAliyunSecret3c9d1f",
}
STORE_SETS = {"store.max_attempts": 8, "store.backoff_base_s": 0.01, "store.backoff_max_s": 0.05,
              "store.read_timeout_s": 1.0, "store.connect_timeout_s": 1.0}  # fmt: skip


class RandomFaults:
    """A proxy rule: each request has probability ``p`` of one of four faults (a seeded choice)."""

    def __init__(self, rng: random.Random, p: float = 0.10) -> None:
        self.rng, self.p = rng, p
        self.lock = threading.Lock()
        self.kinds: dict[str, int] = {"500": 0, "503 SlowDown": 0, "reset": 0, "stall": 0}

    def __call__(self, seen: Seen) -> Fault | None:
        with self.lock:
            hit = self.rng.random() < self.p
            kind = self.rng.choice(list(self.kinds)) if hit else None
            if kind:
                self.kinds[kind] += 1
        if kind == "stall":
            time.sleep(STALL_S)  # past the client's read timeout, then the request goes through late
            return None
        return {"500": error(500, "InternalError"), "503 SlowDown": slow_down(), "reset": reset()}.get(
            kind or "", None
        )


def _quiet(proxy: FaultProxy) -> FaultProxy:
    """Clients give up on stalled requests; the proxy's late answer then hits a closed socket: expected."""
    proxy._server.handle_error = lambda request, address: None
    return proxy


def _train(
    proxy: FaultProxy, bucket: str, run_dir: Path, extra_env: dict, **store: object
) -> subprocess.CompletedProcess:
    ov = base_overrides(run_dir, **{"checkpoint.uri": f"s3://{bucket}/run", **STORE_SETS, **store})
    env = clean_env(WARMSTART_S3_ENDPOINT_URL=proxy.url, WARMSTART_S3_ADDRESSING_STYLE="path", **extra_env)
    cmd = [str(VENV_BIN / "warmstart"), "-v", "train", "-c", "configs/demo.yaml", *sets(ov)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory, s3_server):
    rng, seed = rng_for("store")
    bucket = "faults-store-run"
    s3_client(s3_server).create_bucket(Bucket=bucket)
    rule = RandomFaults(rng)
    proxy = _quiet(FaultProxy(s3_server, rule)).start()
    run_dir = tmp_path_factory.mktemp("faulty") / "run"
    try:
        proc = _train(proxy, bucket, run_dir, {"AWS_ACCESS_KEY_ID": "AKIAFAULTSUITE000001", **SECRETS})
    finally:
        proxy.stop()
    return {"proc": proc, "rule": rule, "proxy": proxy, "bucket": bucket, "run_dir": run_dir, "seed": seed}


def test_random_store_faults_run_completes_and_every_checkpoint_verifies(faulty_run, s3_server):
    proc, rule, bucket = faulty_run["proc"], faulty_run["rule"], faulty_run["bucket"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    retries = [x for x in proc.stderr.splitlines() if "(transient); attempt" in x and "retrying in" in x]
    injected = sum(rule.kinds.values())
    assert injected >= 1 and len(retries) == injected  # every injected fault was retried, and said so
    assert all(f"s3://{bucket}/" in x for x in retries)  # each retry names the bucket and key
    env = clean_env(WARMSTART_S3_ENDPOINT_URL=s3_server, WARMSTART_S3_ADDRESSING_STYLE="path")
    verify = subprocess.run([str(VENV_BIN / "warmstart"), "ckpt", "verify", f"s3://{bucket}/run"],
                            cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    lines = verify.stdout.strip().splitlines()
    assert verify.returncode == 0 and lines and all(": OK (" in x for x in lines), verify.stdout
    assert f"step {TOTAL}: OK" in verify.stdout
    cfg = {"endpoint_url": s3_server, "addressing_style": "path", "region": "us-east-1"}
    from app.store.config import StoreConfig

    got, want = load_step(f"s3://{bucket}/run", TOTAL, StoreConfig(**cfg)), load_step(reference(), TOTAL)
    assert all(np.array_equal(got["model"][k], want["model"][k]) for k in want["model"])
    record("store_faults", {"requests": faulty_run["proxy"].count(), "injected": rule.kinds,
                            "injected_total": injected, "retries_logged": len(retries),
                            "checkpoints_verified": len(lines), "exit_code": proc.returncode,
                            "seed": faulty_run["seed"], "fault_rate": rule.p})  # fmt: skip


def test_store_down_past_the_retry_budget_fails_loudly_and_keeps_the_staged_checkpoint(tmp_path, s3_server):
    bucket = "faults-store-down"
    s3_client(s3_server).create_bucket(Bucket=bucket)
    state = {"down": False, "refused": 0}

    def down_after_first_commit(seen: Seen) -> Fault | None:
        if state["down"]:
            state["refused"] += 1
            return error(503, "ServiceUnavailable", "down")
        if seen.method == "PUT" and "/manifest.json" in seen.path:
            state["down"] = True  # this commit goes through; everything after it fails
        return None

    proxy = _quiet(FaultProxy(s3_server, down_after_first_commit)).start()
    try:
        proc = _train(proxy, bucket, tmp_path / "run", {}, **{"store.max_attempts": 3})
    finally:
        proxy.stop()
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("warmstart: storage: s3://faults-store-down/run/step-00000010")
    assert "still failing after 3 attempts: 503" in last
    staged = tmp_path / "run" / "staging" / "step-00000010"
    assert sorted(p.name for p in staged.iterdir()) == [
        "meta.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]  # fmt: skip
    assert f"its files are kept at {staged}" in proc.stderr
    want = load_step(reference(), 10)
    for group in ("model", "optimizer"):
        kept = read_tensors(staged / f"{group}.safetensors", group)
        assert all(np.array_equal(kept[k], want[group][k]) for k in want[group])
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_server).list_objects_v2(
        Bucket=bucket)["Contents"]]  # fmt: skip
    assert "run/step-00000005/manifest.json" in keys and not any("step-00000010" in k for k in keys)
    record("store_down", {"exit_code": proc.returncode, "staged_files": 4, "refused_requests": state["refused"],
                          "max_attempts": 3, "message": last})  # fmt: skip


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_credentials_never_appear_in_logs_meta_or_printed_config(faulty_run, s3_server, tmp_path):
    proc, run_dir, bucket = faulty_run["proc"], faulty_run["run_dir"], faulty_run["bucket"]
    scanned: dict[str, list[str]] = {"stdout": _leaks(proc.stdout), "stderr (-v)": _leaks(proc.stderr)}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        scanned[str(path.relative_to(run_dir))] = _leaks(path.read_bytes().decode("latin-1"))
    client = s3_client(s3_server)
    for obj in client.list_objects_v2(Bucket=bucket)["Contents"]:
        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("latin-1")
        scanned[f"s3://{bucket}/{obj['Key']}"] = _leaks(body)
    env = clean_env(**SECRETS, OSS_ACCESS_KEY_ID="LTAIfaultsuite", OSS_REGION="cn-hangzhou",
                    WARMSTART_CHECKPOINT_URI="oss://bkt/run")  # fmt: skip
    printed = subprocess.run([str(VENV_BIN / "warmstart"), "config", "-c", "configs/demo.yaml", "--print"],
                             cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    scanned["config --print"] = _leaks(printed.stdout + printed.stderr)
    assert any(k.endswith("meta.json") for k in scanned) and any(k.endswith("log.jsonl") for k in scanned)
    record("credentials", {"places_scanned": len(scanned), "leaks": sum(map(len, scanned.values()))})
    assert {k: v for k, v in scanned.items() if v} == {}
