"""``make demo``: the main job end to end on the embedded default (a local folder, or S3 on loopback).

1. cold-train a 5-class digits classifier and publish its checkpoints;
2. warm-start ``partial`` into a 10-class head (lower LR, warmup, backbone frozen for 40 steps);
3. deliver a real SIGTERM mid-run: the trainer saves and exits 143;
4. run the same command again: it resumes exactly and finishes;
5. run the same fine-tune uninterrupted and compare final parameters bit for bit;
6. draw the loss/LR curves.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "demo"


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _warmstart(args: list[str], env: dict[str, str], check: int | None = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "app.cli", *args]
    print("$ warmstart " + " ".join(args), flush=True)
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check is not None and proc.returncode != check:
        print(proc.stdout)
        raise SystemExit(f"demo: step failed: exit {proc.returncode} (expected {check})")
    return proc


def _last(log: Path, kind: str, event: str | None = None) -> dict:
    found = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == kind and (event is None or rec.get("event") == event):
            found = rec
    return found


def _interrupt(args: list[str], env: dict[str, str], log: Path, at_step: int) -> int:
    """Start training, SIGTERM it once it logged ``at_step``, and return its exit code."""
    print("$ warmstart " + " ".join(args) + f"   # SIGTERM once step {at_step} is logged", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and _last(log, "train").get("step", 0) >= at_step:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    for line in err.splitlines():
        if "preempted" in line or "stop requested" in line:
            print("  " + line)
    return proc.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_s3(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    import boto3

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    env.update(
        AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1",
        WARMSTART_S3_ENDPOINT_URL=endpoint, WARMSTART_S3_ADDRESSING_STYLE="path",
    )  # fmt: skip
    os.environ.update(
        {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    )
    for _ in range(100):
        try:
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="warmstart-demo")
            print(f"moto_server (S3 protocol) on {endpoint}, bucket warmstart-demo")
            return server, "s3://warmstart-demo"
        except Exception:  # noqa: BLE001  (server still starting)
            time.sleep(0.2)
    server.kill()
    raise SystemExit("demo: moto_server did not start")


def _final_model(uri: str, env: dict[str, str]) -> dict[str, np.ndarray]:
    from app.checkpoint import open_source
    from app.config import load_config

    store_cfg = load_config(None, env=env).store
    return open_source(uri, store_cfg, allow_pickle=False, staging_dir=RUNS / "compare").tensors["model"]


def run_demo(store: str) -> None:
    t0 = time.monotonic()
    shutil.rmtree(RUNS, ignore_errors=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = None
    if store == "s3":
        server, base = _start_s3(env)
    else:
        base = str(RUNS)
    pre_uri, ft_uri, ref_uri = f"{base}/pretrained", f"{base}/finetune/checkpoints", f"{base}/reference/ckpt"
    try:
        _say("1. cold start: 5-class digits classifier (digits 0-4)")
        _warmstart(["train", "-c", "configs/digits_pretrain.yaml", "--set", f"checkpoint.uri={pre_uri}"], env)
        acc5 = _last(RUNS / "pretrain" / "log.jsonl", "eval")["metrics"]["accuracy"]
        print(f"pretrained accuracy on digits 0-4: {acc5:.3f}")
        print(_warmstart(["ckpt", "ls", pre_uri], env).stdout)

        ft = ["train", "-c", "configs/digits_finetune.yaml", "--set", f"init.from={pre_uri}",
              "--set", f"checkpoint.uri={ft_uri}"]  # fmt: skip
        log = RUNS / "finetune" / "log.jsonl"
        _say("2-3. warm start (partial) into a 10-class head, then a real SIGTERM mid-run")
        rc = _interrupt(ft, env, log, at_step=100)
        stopped = _last(log, "event", "preempted").get("step")
        print(f"trainer exited {rc} (143 = preempted and saved) at step {stopped}")
        if rc != 143:
            raise SystemExit(f"demo: expected exit 143 after SIGTERM, got {rc}")
        report = json.loads((RUNS / "finetune" / "warmstart_report.json").read_text())
        print(f"partial load: {len(report['loaded'])} tensors loaded, skipped {report['ignored']}")

        _say("4. the same command again: exact resume")
        _warmstart(ft, env)
        resumed = _last(log, "event", "resume")
        acc10 = _last(log, "eval")["metrics"]["accuracy"]
        print(
            f"resumed at step {resumed['step']} from {resumed['source']}; final 10-class accuracy {acc10:.3f}"
        )

        _say("5. reference: the same fine-tune without interruption")
        _warmstart(ft[:-1] + [f"checkpoint.uri={ref_uri}", "--set", "run.dir=runs/demo/reference"], env)
        a, b = _final_model(ft_uri, env), _final_model(ref_uri, env)
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        print(
            f"final parameters bit-identical to the uninterrupted run: {'yes' if same else 'NO'} ({len(a)} tensors)"
        )
        if not same:
            raise SystemExit("demo: resumed run differs from the uninterrupted run")

        _say("6. curves")
        _warmstart(["plot", "runs/demo/finetune"], env)
        print(f"plot: {RUNS / 'finetune' / 'curves.png'}")
        print(f"\ndemo finished in {time.monotonic() - t0:.0f}s (store: {store}, checkpoints under {base})")
    finally:
        if server is not None:
            server.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--store", choices=["local", "s3"], default="local")
    run_demo(parser.parse_args(argv).store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
