"""Helpers for training tests: tiny configs, in-process runs stopped at a chosen step, tensor comparison."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from app.checkpoint import CheckpointManager
from app.config import load_config
from app.store import open_store
from app.train.start import checkpoint_uri
from bench.inprocess import train_in_process

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without warmstart/launcher settings, the venv first on PATH, plus ``extra``."""
    drop = ("WARMSTART_", "PADDLE_", "FLAGS_", "CUDA_VISIBLE_DEVICES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def tiny_overrides(run_dir: Path, **extra: object) -> list[str]:
    base = {
        "run.dir": str(run_dir),
        "schedule.total_steps": 40,
        "schedule.warmup.steps": 8,
        "checkpoint.every_steps": 10,
        "train.batch_size": 16,
        "train.log_every_steps": 1,
        "train.eval_every_steps": 15,
        "train.progress_bar": "off",
        "task.options.width": 4,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def run_inprocess(overrides: list[str], stop_at: int | None = None, config: str = "configs/demo.yaml"):
    """Run `warmstart train` in this process; returns (exit code, session)."""
    return train_in_process(load_config(ROOT / config, overrides, env={}), stop_at)


def final_model(cfg_overrides: list[str], config: str = "configs/demo.yaml") -> dict[str, np.ndarray]:
    cfg = load_config(ROOT / config, cfg_overrides, env={})
    mgr = CheckpointManager(
        open_store(checkpoint_uri(cfg), cfg.store), cfg.checkpoint, Path(cfg.run.dir) / "x"
    )
    try:
        return mgr.load(mgr.latest()).tensors["model"]
    finally:
        mgr.close()


def assert_same_tensors(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert np.array_equal(a[key], b[key]), f"{key} differs"


def train_losses(log: Path) -> dict[int, float]:
    """step -> loss from log.jsonl; a later line for the same step wins (a resumed run re-logs nothing)."""
    import json

    out: dict[int, float] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "train":
            out[rec["step"]] = rec["loss"]
    return out


def save_pdparams(tensors: dict[str, np.ndarray], path: Path) -> Path:
    """A pickled state dict as a toolkit's training writes it (PaddleOCR's ``best_accuracy.pdparams``:
    ``paddle.save(model.state_dict(), path)``)."""
    import paddle

    path.parent.mkdir(parents=True, exist_ok=True)
    paddle.save({k: paddle.to_tensor(v) for k, v in tensors.items()}, str(path))
    return path


def prepared_session(config: str, overrides: list[str]):
    """A session as `warmstart train` sets it up (warm start or resume applied), without training."""
    from app.train.preempt import StopRequest
    from app.train.start import prepare

    session = prepare(load_config(ROOT / config, overrides, env={}), StopRequest())
    session.mgr.close()
    session.runlog.close()
    return session
