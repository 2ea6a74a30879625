"""Training stall per checkpoint: the real ``save()`` of the loop against a pure copy of the same tensors,
async against synchronous save + upload, and throughput with checkpoints every 50 steps against none.

The stall is the time the training thread spends in :func:`app.train.loop.save`: the host snapshot (a
copy of the model and optimizer tensors into the manager's reused host buffers, :mod:`app.checkpoint.hostbuf`)
and the hand-over to the background saver. Before each timed save
the previous one is flushed, so the stall never includes waiting for an earlier save.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from pathlib import Path

from app.train.loop import run_loop, save, train_step
from bench.common import interleave, ratio_figure, state_mb, summarize, synth_overrides
from bench.sessions import TimedSnapshot, host_arrays, open_session

__all__ = ["stall_suite", "throughput_suite"]

log = logging.getLogger(__name__)


def _copy_time(arrays: list) -> float:
    started = time.perf_counter()
    copies = [a.copy() for a in arrays]
    took = time.perf_counter() - started
    del copies
    return took


def stall_suite(
    workdir: Path, uri: str, *, width: int, layers: int, reps: int, sync: bool, extra: list[str]
) -> dict:
    """Stall of an async save vs a pure copy (and vs a synchronous save + upload when ``sync``)."""
    over = synth_overrides(workdir, uri, width=width, layers=layers, **{"checkpoint.async_save": True})
    s = open_session(over + extra)
    timer = TimedSnapshot(s.build_snapshot)
    s.build_snapshot = timer
    background: list[float] = []
    snap_times: list[float] = []
    try:
        train_step(s)
        arrays = host_arrays(s)
        nbytes = sum(a.nbytes for a in arrays)

        def stall_async() -> float:
            train_step(s)
            s.mgr.flush()
            gc.collect()
            started = time.perf_counter()
            save(s, sync=False, reason="bench")
            took = time.perf_counter() - started
            snap_times.append(timer.last)
            started = time.perf_counter()
            s.mgr.flush()
            background.append(time.perf_counter() - started)
            return took

        def stall_sync() -> float:
            train_step(s)
            s.mgr.flush()
            gc.collect()
            started = time.perf_counter()
            save(s, sync=True, reason="bench")
            return time.perf_counter() - started

        sides = {"async": stall_async, "copy": lambda: _copy_time(arrays)}
        if sync:
            sides["sync"] = stall_sync
        runs = interleave(reps, sides)
    finally:
        s.mgr.close()
        s.runlog.close()
    out = {
        "state_mb": round(nbytes / 2**20, 1),
        "store": uri.split(":")[0] if "://" in uri else "local",
        "vs_copy": ratio_figure(runs["async"], runs["copy"]),
        "snapshot_s": summarize(snap_times),
        "background_save_s": summarize(background),
    }
    if sync:
        out["vs_sync"] = ratio_figure(runs["async"], runs["sync"])
    return out


def _steps_per_s(workdir: Path, name: str, over: list[str]) -> float:
    s = open_session([*over, f"run.dir={workdir / name}", f"checkpoint.uri={workdir / name / 'ck'}"])
    try:
        run_loop(s)
    finally:
        s.mgr.close()
        s.runlog.close()
    stamps = s.task.stamps  # one per optimizer step; the first one (warm-up of the kernels) is the origin
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def throughput_suite(workdir: Path, *, width: int, layers: int, steps: int, every: int, reps: int) -> dict:
    """Steps/s over whole runs with ``checkpoint.every_steps=every`` vs no interval checkpoints (local store)."""
    base = synth_overrides(
        workdir, str(workdir / "unused"), width=width, layers=layers,
        **{"schedule.total_steps": steps, "checkpoint.async_save": True},
    )  # fmt: skip
    counter = {"n": 0}

    def run(every_steps: int | None) -> float:
        counter["n"] += 1
        # The previous run's checkpoint files (~2 x state) must not be written back during this one's timing.
        os.sync()
        return _steps_per_s(
            workdir, f"tp{counter['n']}", [*base, f"checkpoint.every_steps={every_steps or 'null'}"]
        )

    runs = interleave(reps, {"ckpt": lambda: run(every), "none": lambda: run(None)})
    fig = ratio_figure(runs["ckpt"], runs["none"])  # steps/s: higher is better, ratio = ckpt / none
    fig.update(state_mb=round(state_mb(width, layers), 1), steps=steps, every_steps=every)
    return fig
