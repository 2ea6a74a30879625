"""In-process measurements of one task in one AMP mode, each side by side in the same process.

* **checkpoint stall vs copy**: the time the training thread spends in the loop's ``save()`` (async save:
  host snapshot + hand-over) against a pure device->host copy of the same tensors
  (:func:`copy_baseline`), alternating, after a flush so no earlier save is waited for;
* **loop vs bare**: optimizer steps/s of our ``run_loop`` against a hand-written Paddle loop (forward under
  the same autocast, backward, the same loss scaler, ``step``, ``clear_grad``, ``lr.step``) on fresh
  sessions with the same seed, alternating; both are timed at ``lr.step()``, first to last step;
* **data wait**: inside our loop, the time each step waited for its batches (the batch source's
  ``next()``: worker pool or in-process), per step, and its share of the step interval.

The bare loop is this module's own and not ``bench/loop.py``'s: the image ships ``app/`` only, and the
bare loop must run the same AMP as ours to be a fair anchor.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import paddle

from app.gpucheck.cases import ROOT, Case, case_overrides

__all__ = ["copy_baseline", "measure_case", "session_tensors"]


def _sync() -> None:
    if paddle.is_compiled_with_cuda() and paddle.device.get_device().startswith("gpu"):
        paddle.device.cuda.synchronize()


def session_tensors(s: Any) -> dict[str, paddle.Tensor]:
    """The device tensors a checkpoint copies, by name: the model's state and the optimizer's accumulators."""
    out = {f"model/{k}": v for k, v in s.net.state_dict().items()}
    for acc, per_param in s.optimizer._accumulators.items():
        out.update({f"optimizer/{name}/{acc}": t for name, t in per_param.items()})
    return out


#: What :func:`copy_baseline` copies into (the report says it next to the figure; change both together).
ANCHOR = "a copy into host buffers reused across saves (pinned on a GPU build): app.checkpoint.hostbuf"


def copy_baseline() -> Callable[[Mapping[str, paddle.Tensor]], float]:
    """The anchor of the stall figure: a function timing a bare device->host copy of a named state (seconds),
    into the same reusable (pinned on a GPU) host buffers the trainer's snapshot uses."""
    from app.checkpoint.hostbuf import HostBuffers, default_allocator, snapshot_into

    buffers = HostBuffers(default_allocator())

    def copy(state: Mapping[str, paddle.Tensor]) -> float:
        _sync()
        return snapshot_into(buffers, state)

    return copy


def _open(case: Case, run_dir: Path, data: Path, amp: str, quick: bool, **extra: object) -> Any:
    from app.config import load_config
    from app.train.preempt import StopRequest
    from app.train.start import prepare

    over = case_overrides(case, run_dir, data, amp, quick, **extra)
    return prepare(load_config(ROOT / case.config, over, env={}), StopRequest())


def _close(s: Any) -> None:
    s.mgr.close()
    s.runlog.close()


def _stall(case: Case, work: Path, data: Path, amp: str, quick: bool, reps: int) -> dict[str, Any]:
    from app.train.loop import save, train_step

    s = _open(case, work / "stall", data, amp, quick, **{"checkpoint.async_save": True})
    stalls, copies = [], []
    try:
        train_step(s)
        tensors, anchor = session_tensors(s), copy_baseline()
        nbytes = sum(int(t.numel()) * t.element_size() for t in tensors.values())
        for rep in range(reps):
            for side in ("save", "copy") if rep % 2 == 0 else ("copy", "save"):
                train_step(s)
                s.mgr.flush()
                gc.collect()
                if side == "copy":
                    copies.append(anchor(tensors))
                    continue
                _sync()
                started = time.perf_counter()
                save(s, sync=False, reason="gpu-check")
                stalls.append(time.perf_counter() - started)
        s.mgr.flush()
    finally:
        _close(s)
    return {
        "state_mb": round(nbytes / 2**20, 2),
        "anchor": ANCHOR,
        **_ratio(stalls, copies, "stall_s", "copy_s"),
    }


class _TimedSource:
    """A batch source whose ``next()`` waits are recorded (the loop's data wait)."""

    def __init__(self, inner: Any, waits: list[float]) -> None:
        self.inner, self.waits = inner, waits
        self.pids = getattr(inner, "pids", [])

    def next(self) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.next()
        finally:
            self.waits.append(time.perf_counter() - started)

    def close(self) -> None:
        self.inner.close()


@contextlib.contextmanager
def _timed_batches(waits: list[float]) -> Iterator[None]:
    from app.train import loop

    real = loop.open_batches

    def timed(*args: Any, **kwargs: Any) -> tuple[Any, int]:
        source, workers = real(*args, **kwargs)
        return _TimedSource(source, waits), workers

    loop.open_batches = timed
    try:
        yield
    finally:
        loop.open_batches = real


def _stamp_lr(s: Any, stamps: list[float]) -> None:
    inner = s.lr.step

    def stamped(*args: Any, **kwargs: Any) -> None:
        inner(*args, **kwargs)
        stamps.append(time.perf_counter())

    s.lr.step = stamped


def _bare(s: Any, steps: int) -> None:
    task, opt = s.task, s.optimizer
    s.net.train()
    for _ in range(steps):
        epoch, indices = s.stream.next_batch()
        batch = task.to_batch(task.train_arrays(indices, epoch))
        cast = paddle.amp.auto_cast(dtype=s.amp_dtype) if s.amp_dtype else contextlib.nullcontext()
        with cast:  # as the loop does; Paddle's auto_cast(enable=False) would still set a global dtype
            loss = task.loss(s.net, batch)
        if s.scaler is not None:
            s.scaler.scale(loss).backward()
            s.scaler.step(opt)
            s.scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.clear_grad()
        s.lr.step()
    _sync()


def _rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def _loop(case: Case, work: Path, data: Path, amp: str, quick: bool, reps: int) -> dict[str, Any]:
    from app.train.loop import run_loop

    ours, bare, waits_per_step, counter = [], [], [], {"n": 0}

    def side(name: str) -> None:
        counter["n"] += 1
        s = _open(case, work / f"loop-{counter['n']}", data, amp, quick)
        stamps: list[float] = []
        _stamp_lr(s, stamps)
        try:
            if name == "ours":
                waits: list[float] = []
                with _timed_batches(waits):
                    run_loop(s)
                accum = s.cfg.train.grad_accum_steps
                waits_per_step.extend(sum(waits[i : i + accum]) for i in range(0, len(waits), accum))
                ours.append(_rate(stamps))
            else:
                _bare(s, s.schedule.total_steps)
                bare.append(_rate(stamps))
        finally:
            _close(s)

    for rep in range(reps):
        for name in ("ours", "bare") if rep % 2 == 0 else ("bare", "ours"):
            side(name)
    out = _ratio(ours, bare, "ours_steps_per_s", "bare_steps_per_s")
    step_s = 1 / statistics.median(ours) if ours else float("nan")
    wait = statistics.median(waits_per_step[1:] or waits_per_step) if waits_per_step else float("nan")
    out["data_wait"] = {
        "median_ms_per_step": round(1000 * wait, 3),
        "mean_ms_per_step": round(1000 * statistics.fmean(waits_per_step), 3) if waits_per_step else None,
        "share_of_step": round(wait / step_s, 4) if step_s == step_s and step_s > 0 else None,
        "steps": len(waits_per_step),
    }
    return out


def _ratio(ours: list[float], anchor: list[float], a: str, b: str) -> dict[str, Any]:
    ratios = [x / y for x, y in zip(ours, anchor, strict=False) if y]
    return {
        "ratio_median": round(statistics.median(ratios), 4) if ratios else None,
        "ratios": [round(r, 4) for r in ratios],
        a: [round(x, 6) for x in ours],
        b: [round(x, 6) for x in anchor],
    }


def measure_case(case: Case, amp: str, work: Path, data: Path, quick: bool, reps: int) -> dict[str, Any]:
    """Stall vs copy, loop vs bare and data wait for one task in one AMP mode (this process's device)."""
    import os

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"task": case.name, "amp": amp, "reps": reps, "loadavg_before": _load()}
    out["stall_vs_copy"] = _stall(case, work, data, amp, quick, reps)
    out["loop_vs_bare"] = _loop(case, work, data, amp, quick, reps)
    out["loadavg_after"], out["cpu_count"] = _load(), os.cpu_count()
    return out


def _load() -> float | None:
    import os

    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
