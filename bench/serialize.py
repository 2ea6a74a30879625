"""safetensors (our tensor files) against ``paddle.save`` / ``paddle.load`` on the same state dict."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import paddle

from app.checkpoint.tensorio import read_tensors, write_tensors
from bench.common import interleave, ratio_figure

__all__ = ["serialize_suite"]


def serialize_suite(workdir: Path, arrays: list[np.ndarray], reps: int) -> dict:
    named = {f"t{i:03d}": a for i, a in enumerate(arrays)}
    tensors = {k: paddle.to_tensor(v) for k, v in named.items()}
    ours_path, theirs_path = workdir / "state.safetensors", workdir / "state.pdparams"

    def timed(fn) -> float:  # noqa: ANN001
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    save = interleave(reps, {
        "safetensors": lambda: timed(lambda: write_tensors(named, ours_path, "bench")),
        "paddle": lambda: timed(lambda: paddle.save(tensors, str(theirs_path))),
    })  # fmt: skip
    load = interleave(reps, {
        "safetensors": lambda: timed(lambda: read_tensors(ours_path, "bench")),
        "paddle": lambda: timed(lambda: paddle.load(str(theirs_path))),
    })  # fmt: skip
    out = {
        "state_mb": round(sum(a.nbytes for a in arrays) / 2**20, 1),
        "file_mb": {"safetensors": round(ours_path.stat().st_size / 2**20, 1),
                    "paddle": round(theirs_path.stat().st_size / 2**20, 1)},
        "save": ratio_figure(save["safetensors"], save["paddle"]),
        "load": ratio_figure(load["safetensors"], load["paddle"]),
    }  # fmt: skip
    ours_path.unlink()
    theirs_path.unlink()
    return out
