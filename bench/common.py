"""Shared benchmark plumbing: side-by-side repetitions, summaries, a moto_server, configs, load average.

Every figure is a ratio of two measurements taken in the same run, alternating A and B (and rotating
which goes first) so that drift and other people's load on the machine hit both sides alike.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zlib  # noqa: F401  (before paddle: FIELD_NOTES "Import zlib before paddle")
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ROOT",
    "MB",
    "Moto",
    "summarize",
    "ratio_figure",
    "interleave",
    "load_average",
    "synth_overrides",
    "state_mb",
    "timed",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def summarize(values: list[float]) -> dict:
    """Median, min, max and the raw values (rounded) of repeated measurements."""
    vals = [float(v) for v in values]
    return {
        "median": statistics.median(vals) if vals else math.nan,
        "min": min(vals) if vals else math.nan,
        "max": max(vals) if vals else math.nan,
        "n": len(vals),
        "values": [round(v, 6) for v in vals],
    }


def ratio_figure(ours: list[float], anchor: list[float], **extra: object) -> dict:
    """Per-repetition ratios ours/anchor (paired), plus both sides' own summaries."""
    ratios = [a / b for a, b in zip(ours, anchor, strict=True)]
    return {"ratio": summarize(ratios), "ours": summarize(ours), "anchor": summarize(anchor), **extra}


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def interleave(reps: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each side once per repetition, rotating the order; every side returns its own seconds."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            out[name].append(float(sides[name]()))
        log.info("rep %d/%d: %s", rep + 1, reps, {n: round(v[-1], 4) for n, v in out.items()})
    return out


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def state_mb(width: int, layers: int, classes: int = 10) -> float:
    """Checkpoint size (model + AdamW moments, float32) of the synthetic MLP, in MiB."""
    params = layers * (width * width + width) + width * classes + classes
    return 3 * 4 * params / MB


def synth_overrides(run_dir: Path, uri: str, *, width: int, layers: int, **extra: object) -> list[str]:
    """``--set`` items for a run of the synthetic MLP task (``bench.synth``)."""
    base: dict[str, object] = {
        "run.dir": str(run_dir),
        "run.seed": 7,
        "task.kind": "bench_mlp",
        "task.options.width": width,
        "task.options.layers": layers,
        "optim.name": "adamw",
        "schedule.base_lr": 0.0001,
        "schedule.total_steps": 1000,
        "schedule.warmup.kind": "none",
        "schedule.decay.kind": "constant",
        "train.batch_size": 8,
        "train.log_every_steps": 1000,
        "train.progress_bar": "off",
        "train.metric": "eval_loss",
        "train.metric_mode": "min",
        "checkpoint.uri": uri,
        "checkpoint.keep_last": 1,
        "checkpoint.keep_best": 0,
    }
    base.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in base.items()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Moto:
    """A real ``moto_server`` on loopback, with fake credentials exported to this process and children."""

    url: str = ""
    proc: subprocess.Popen | None = None

    def start(self) -> Moto:
        os.environ.update(FAKE_AWS)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(name, None)
        port = _free_port()
        exe = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url}")

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.url).create_bucket(Bucket=name)
        return name

    def store_overrides(self) -> list[str]:
        return [f"store.endpoint_url={self.url}", "store.addressing_style=path", "store.region=us-east-1"]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
