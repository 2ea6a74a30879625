"""What the scenarios read back: committed checkpoints on S3, a checkpoint's trainer state, figures."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from tests.multinode.cluster import Job

__all__ = ["FULL", "committed", "latest_state", "manifests", "record", "runs", "summary"]

FULL = os.environ.get("WS_FAULTS_FULL") == "1"
#: runs per scenario: (make test, make faults). make test runs the notice and node-lost scenarios once.
_RUNS = {"notice": (1, 6), "lost": (1, 6), "cut": (0, 3), "scale": (0, 1)}


def runs(scenario: str) -> int:
    explicit = os.environ.get(f"WS_MULTINODE_{scenario.upper()}_RUNS")
    if explicit:
        return int(explicit)
    reduced, full = _RUNS[scenario]
    return full if FULL else reduced


def _client(job: Job):  # noqa: ANN202  (a boto3 S3 client)
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=job.s3_url, region_name="us-east-1")


def manifests(job: Job) -> dict[int, bytes]:
    """step -> manifest bytes of every committed checkpoint of the job (a step folder with a manifest)."""
    bucket, _, prefix = job.uri.removeprefix("s3://").partition("/")
    s3 = _client(job)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if parts[-1] == "manifest.json" and parts[-2].startswith("step-"):
                out[int(parts[-2][5:])] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def committed(job: Job) -> list[int]:
    return sorted(manifests(job))


def latest_state(job: Job) -> dict[str, Any]:
    """The trainer state of the job's latest committed checkpoint (read with the project's manager)."""
    from app.checkpoint import CheckpointManager
    from app.config import load_config
    from app.store import open_store
    from app.train.start import checkpoint_uri
    from tests.train_helpers import ROOT

    cfg = load_config(ROOT / "configs/demo.yaml", job.overrides(job.net.hosts[0]), env={})
    mgr = CheckpointManager(open_store(checkpoint_uri(cfg), cfg.store), cfg.checkpoint, job.root / "read")
    try:
        return mgr.load(mgr.latest()).state
    finally:
        mgr.close()


def record(name: str, figures: dict[str, Any]) -> None:
    """Write the figures to $WS_FAULTS_RESULTS/multinode_<name>.json (read by tests.faults.report)."""
    out = os.environ.get("WS_FAULTS_RESULTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"multinode_{name}.json").write_text(
            json.dumps(figures, indent=2, sort_keys=True) + "\n"
        )


def summary(times: list[float]) -> dict[str, float | None]:
    if not times:
        return {"median_s": None, "max_s": None}
    return {"median_s": round(statistics.median(times), 1), "max_s": round(max(times), 1)}
