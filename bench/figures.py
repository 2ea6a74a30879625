"""The figures ``make bench`` produces: where each sits in results.json, what it is compared with, target."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Figure", "FIGURES", "STANDALONE_KEYS", "lookup", "verdict"]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    anchor: str
    path: tuple[str, ...]  # to the number (a summary dict's "median", or a plain number)
    op: str  # "<=", ">=", "==" or "" (reported only)
    target: float | None
    #: The module that measures it when it is not ``python -m bench.run`` (e.g. ``bench.det_throughput``):
    #: it writes its own key of results.json, which ``bench.run`` keeps.
    standalone: str = ""

    @property
    def target_text(self) -> str:
        if not self.op:
            return "reported"
        return f"{'≤' if self.op == '<=' else '≥' if self.op == '>=' else '='} {self.target:g}" + (
            "" if self.op == "==" else "×"
        )


def _ratio(*path: str) -> tuple[str, ...]:
    return (*path, "ratio", "median")


FIGURES: list[Figure] = [
    Figure("stall_small_local", "training stall per checkpoint, small state, local store",
           "pure host copy of the same tensors", _ratio("stall", "local_small", "vs_copy"), "<=", 1.5),
    Figure("stall_large_local", "training stall per checkpoint, large state, local store",
           "pure host copy of the same tensors", _ratio("stall", "local_large", "vs_copy"), "<=", 1.5),
    Figure("stall_small_s3", "training stall per checkpoint, small state, S3 store",
           "pure host copy of the same tensors", _ratio("stall", "s3_small", "vs_copy"), "<=", 1.5),
    Figure("stall_large_s3", "training stall per checkpoint, large state, S3 store",
           "pure host copy of the same tensors", _ratio("stall", "s3_large", "vs_copy"), "<=", 1.5),
    Figure("async_small", "stall with async saving, small state, S3",
           "synchronous save + upload", _ratio("stall", "s3_small", "vs_sync"), "<=", 0.1),
    Figure("async_large", "stall with async saving, large state, S3",
           "synchronous save + upload", _ratio("stall", "s3_large", "vs_sync"), "<=", 0.1),
    Figure("throughput_ckpt", "training throughput with a checkpoint every 50 steps",
           "no checkpointing", _ratio("throughput"), ">=", 0.98),
    Figure("upload", "upload time of the large checkpoint", "`aws s3 cp` on the same moto_server",
           _ratio("transfer", "upload"), "<=", 1.0),
    Figure("download", "download time of the large checkpoint", "`aws s3 cp` on the same moto_server",
           _ratio("transfer", "download"), "<=", 1.0),
    Figure("resume_latency", "resume latency: process start → first optimizer step (large state, S3)",
           "import + download + load + one step, measured separately", _ratio("resume"), "<=", 1.2),
    Figure("loop_vs_bare", "our loop's throughput (MLP, ~40 ms steps)",
           "a bare Paddle loop, same model and batches", _ratio("loop", "medium"), ">=", 0.98),
    Figure("loop_vs_bare_small", "our loop's throughput (small MLP, ~3 ms steps)",
           "a bare Paddle loop, same model and batches", _ratio("loop", "small"), "", None),
    Figure("sigterm_steps_lost", "steps lost to a SIGTERM within the grace budget", "—",
           ("sigterm", "steps_lost_max"), "==", 0),
    Figure("feed_workers_1", "loop throughput with 1 data worker (JPEG decode + conv net, `bench.feed`)",
           "ideal max(data, compute) per step, each measured alone", _ratio("feed", "loop", "1", "vs_ideal"),
           ">=", 0.9),
    Figure("feed_workers_2", "loop throughput with 2 data workers (`bench.feed`)",
           "ideal max(data, compute) per step, each measured alone", _ratio("feed", "loop", "2", "vs_ideal"),
           ">=", 0.9),
    Figure("feed_workers_1_own_session", "loop throughput with 1 data worker in its own session (`bench.feed`)",
           "ideal max(data, compute) per step, each measured alone",
           _ratio("feed", "loop", "1", "vs_ideal_own_session"), "", None),
    Figure("feed_workers_0", "loop throughput with batches made in the trainer (`bench.feed`)",
           "data + compute per step, each measured alone", _ratio("feed", "loop", "0", "vs_ideal"), "", None),
    Figure("feed_identical", "bit-identical final parameters, data workers 0 vs 1 vs 2 vs 4 (1 = yes)", "—",
           ("feed", "identical_params"), "==", 1),
    Figure("safetensors_save", "safetensors save", "`paddle.save`", _ratio("serialize", "save"), "", None),
    Figure("safetensors_load", "safetensors load", "`paddle.load`", _ratio("serialize", "load"), "", None),
    Figure("det_throughput", "detection training images/s, our loop (PicoDet-S, 640 px JPEGs)",
           "ppdet's own `Trainer`, same config, images, batch and worker count", _ratio("det_throughput"),
           ">=", 1.0, standalone="bench.det_throughput"),
    Figure("nlp_throughput", "NLP training samples/s, our loop (tiny ERNIE)",
           "PaddleNLP `Trainer`, same model, data and batch", _ratio("nlp_throughput"), ">=", 1.0,
           standalone="bench.nlp_throughput"),
    Figure("ocr_ppocrv4_warm_steps", "PP-OCRv4 rec onto a new charset: warm-start steps to the cold run's final "
           "word accuracy, over the cold run's own (`bench.ocr_ppocrv4_warm_vs_cold`)", "cold start, same schedule",
           ("ocr_ppocrv4_warm_vs_cold", "steps_ratio"), "", None, standalone="bench.ocr_ppocrv4_warm_vs_cold"),
    Figure("ocr_ppocrv4_workers_1", "PP-OCRv4 rec training images/s with 1 data worker, RecAug on "
           "(`bench.ocr_ppocrv4_throughput`)", "0 data workers (batches made in the trainer)",
           _ratio("ocr_ppocrv4_throughput"), "", None, standalone="bench.ocr_ppocrv4_throughput"),
]  # fmt: skip


#: results.json keys written by standalone benches (kept when ``bench.run`` rewrites the file).
STANDALONE_KEYS = frozenset(f.path[0] for f in FIGURES if f.standalone)


def lookup(results: dict, path: tuple[str, ...]) -> Any:
    node: Any = results
    for part in path:
        node = node[part]
    return node


def verdict(fig: Figure, value: float) -> str:
    if not fig.op or not math.isfinite(value):
        return "reported" if fig.op == "" else "missing"
    ok = {"<=": value <= fig.target, ">=": value >= fig.target, "==": value == fig.target}[fig.op]
    return "met" if ok else "**missed**"
