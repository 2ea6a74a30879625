"""Measure how long a preemption save takes, to size preempt.grace_seconds and the platform's grace period.

Two measurements, each to a local folder and to an S3 server on loopback (moto_server):

- ``state``: a synchronous CheckpointManager save of a synthetic ~200 MB state (model + optimizer, fp32),
  i.e. serialize + sha256 + write/upload + manifest commit;
- ``demo``: the real thing for the demo model — `entrypoint` running configs/demo.yaml is sent SIGTERM
  mid-run; reported are the trainer's own "committed in X s" and the wall time from SIGTERM to exit 143.

    .venv/bin/python deploy/bench_save.py [--repeats 3] [--mb 200]

Prints one JSON object. Numbers from this machine are quoted in docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checkpoint import CheckpointConfig, CheckpointManager, Snapshot  # noqa: E402
from app.store import open_store  # noqa: E402
from app.store.config import StoreConfig  # noqa: E402

BIN = Path(sys.executable).parent
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def make_bucket(url: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=name)


def synthetic_state(mb: int) -> dict[str, dict[str, np.ndarray]]:
    """About ``mb`` MB: a model of mb/3 and an AdamW optimizer of 2 x mb/3 (moment1, moment2), fp32."""
    rng = np.random.default_rng(0)
    per = mb * 1024 * 1024 // 3 // 4 // 8  # 8 tensors per group
    model = {f"layer{i}.weight": rng.standard_normal(per, dtype=np.float32) for i in range(8)}
    opt = {
        f"{k}_{m}": rng.standard_normal(per, dtype=np.float32) for k in model for m in ("moment1", "moment2")
    }
    return {"model": model, "optimizer": opt}


def time_state_save(uri: str, store_cfg: StoreConfig, mb: int, repeats: int, staging: Path) -> list[float]:
    tensors = synthetic_state(mb)
    cfg = CheckpointConfig(uri=uri, async_save=False, keep_last=None, keep_best=0)
    mgr = CheckpointManager(open_store(uri, store_cfg), cfg, staging)
    times = []
    try:
        for step in range(1, repeats + 1):
            copy = {g: {k: v.copy() for k, v in arrays.items()} for g, arrays in tensors.items()}
            t0 = time.perf_counter()
            mgr.save(Snapshot(step=step, tensors=copy, state={"step": step}, meta={}))
            times.append(time.perf_counter() - t0)
    finally:
        mgr.close()
    return times


def time_demo_preemption(env_extra: dict[str, str], run_dir: Path, at_step: int = 40) -> dict[str, float]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(run_dir.parent), **FAKE_AWS, **env_extra,
           "WARMSTART_CONFIG": str(ROOT / "configs/demo.yaml"), "WARMSTART_RUN_DIR": str(run_dir),
           "WARMSTART_ARGS": "--set train.progress_bar=off --set train.log_every_steps=1"}  # fmt: skip
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(ROOT / "entrypoint")], cwd=run_dir.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    log = run_dir / "log.jsonl"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read())
        if log.exists() and any(f'"step": {at_step},' in x for x in log.read_text().splitlines()):
            break
        time.sleep(0.01)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    wall = time.perf_counter() - t0
    assert proc.returncode == 143, err
    took = float(re.search(r"committed in ([0-9.]+)s", err).group(1))
    return {"sigterm_to_exit_s": round(wall, 3), "trainer_reported_save_s": took}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    os.environ.update(FAKE_AWS)
    moto, url = start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="bench_save_"))
    out: dict[str, object] = {"mb": args.mb, "repeats": args.repeats, "cpu_count": os.cpu_count()}
    try:
        make_bucket(url, "bench")
        s3_cfg = StoreConfig(endpoint_url=url, region="us-east-1", addressing_style="path")
        for name, uri, cfg in (
            ("local", str(tmp / "ckpt"), StoreConfig()),
            ("s3", "s3://bench/state", s3_cfg),
        ):
            times = time_state_save(uri, cfg, args.mb, args.repeats, tmp / f"staging-{name}")
            out[f"state_{name}_s"] = {
                "median": round(statistics.median(times), 3),
                "max": round(max(times), 3),
            }
        demo_s3 = {"WARMSTART_CHECKPOINT_URI": "s3://bench/demo", "WARMSTART_S3_ENDPOINT_URL": url,
                   "WARMSTART_S3_ADDRESSING_STYLE": "path"}  # fmt: skip
        out["demo_local"] = time_demo_preemption({}, tmp / "demo-local" / "run")
        out["demo_s3"] = time_demo_preemption(demo_s3, tmp / "demo-s3" / "run")
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
