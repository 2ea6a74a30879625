"""Train -> real SIGTERM -> resume, against an uninterrupted run of the same config (one task, one AMP mode).

Three trainer processes (:mod:`app.gpucheck.child`): A trains to the end; B is sent SIGTERM once its log
shows the middle step (it must commit a checkpoint and exit 143); B again resumes and finishes. The final
checkpoints of A and B are compared tensor by tensor (model, optimizer, task state such as EMA) and by
their fp16 loss-scaler state. On a GPU, AMP kernels may be nondeterministic (atomics in some backward
ops), so a difference is reported with its size rather than failing the check; ``ok`` means the
mechanics held: exit codes, finite losses, resumed at the step that was committed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.gpucheck.cases import ROOT, Case, case_overrides

__all__ = ["Runner", "resume_trial", "compare_tensors"]


@dataclass(frozen=True)
class Runner:
    """How trainer processes are started: on the GPU, or on the CPU standing in for one."""

    device: str  # "gpu" | "cpu"
    simulate: str | None = None  # compute capability the CPU stands in for (CPU test mode)
    scaler_incr_every: int = 1000
    timeout: float = 1800.0

    def cmd(self, case: Case, overrides: list[str]) -> list[str]:
        head = [sys.executable, "-m", "app.gpucheck.child"]
        if self.simulate:
            head += ["--simulate-gpu", self.simulate, "--scaler-incr-every", str(self.scaler_incr_every)]
        sets = [a for o in overrides for a in ("--set", o)]
        return [*head, "--", "train", "-c", str(ROOT / case.config), *sets]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARMSTART_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CUDA build of Paddle then trains on the CPU
        else:
            env["FLAGS_cudnn_deterministic"] = "True"  # as deterministic as cuDNN allows
        return env

    def start(self, case: Case, overrides: list[str], run_dir: Path) -> subprocess.Popen:
        run_dir.mkdir(parents=True, exist_ok=True)
        out = (run_dir / "stdout.log").open("ab")
        err = (run_dir / "stderr.log").open("ab")
        try:
            return subprocess.Popen(
                self.cmd(case, overrides), cwd=ROOT, env=self.env(), stdout=out, stderr=err
            )
        finally:
            out.close()
            err.close()

    def run(self, case: Case, overrides: list[str], run_dir: Path) -> int:
        proc = self.start(case, overrides, run_dir)
        try:
            return proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9


def _records(run_dir: Path) -> list[dict[str, Any]]:
    log = run_dir / "log.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []


def _events(run_dir: Path, name: str) -> list[dict[str, Any]]:
    return [r for r in _records(run_dir) if r.get("event") == name]


def _stop_at(runner: Runner, proc: subprocess.Popen, run_dir: Path, step: int) -> int:
    """SIGTERM once the log shows ``step``; the exit code (-1 if it ended before, -9 on timeout)."""
    deadline = time.monotonic() + runner.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return -1
        if any(r.get("kind") == "train" and r["step"] >= step for r in _records(run_dir)):
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=runner.timeout)
            except subprocess.TimeoutExpired:
                break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    return -9


def _final(case: Case, overrides: list[str], run_dir: Path) -> Any:
    from app.checkpoint import CheckpointManager
    from app.config import load_config
    from app.store import open_store

    cfg = load_config(ROOT / case.config, overrides, env={})
    mgr = CheckpointManager(open_store(str(run_dir / "ckpt"), cfg.store), cfg.checkpoint, run_dir / "read")
    try:
        return mgr.load(mgr.latest())
    finally:
        mgr.close()


def compare_tensors(
    a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
    """Per group: tensors, how many are bit-identical, the largest absolute difference (float64)."""
    out: dict[str, Any] = {}
    for group in sorted(set(a) | set(b)):
        x, y = a.get(group, {}), b.get(group, {})
        same_keys = sorted(set(x) & set(y))
        identical = sum(1 for k in same_keys if x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]))
        diffs = [
            float(np.max(np.abs(x[k].astype("float64") - y[k].astype("float64")))) if x[k].size else 0.0
            for k in same_keys
            if x[k].shape == y[k].shape and x[k].dtype.kind in "fiub" and y[k].dtype.kind in "fiub"
        ]
        out[group] = {
            "tensors": len(same_keys), "identical": identical, "max_abs_diff": max(diffs, default=0.0),
            "only_in_one": sorted(set(x) ^ set(y)),
        }  # fmt: skip
    return out


def _losses_finite(*run_dirs: Path) -> bool:
    losses = [r["loss"] for d in run_dirs for r in _records(d) if r.get("kind") == "train"]
    return bool(losses) and all(isinstance(v, int | float) and math.isfinite(v) for v in losses)


def _tail(run_dir: Path) -> str:
    path = run_dir / "stderr.log"
    return path.read_text(errors="replace")[-1500:] if path.exists() else ""


def resume_trial(runner: Runner, case: Case, amp: str, work: Path, data: Path, quick: bool) -> dict[str, Any]:
    """One task in one AMP mode: uninterrupted vs SIGTERM + resume; what happened, and how close they are."""
    full, cut = work / f"{case.name}-{amp}-full", work / f"{case.name}-{amp}-cut"
    over_full = case_overrides(case, full, data, amp, quick)
    over_cut = case_overrides(case, cut, data, amp, quick)
    total = case.total_steps(quick)
    stop_step = max(1, total // 10)  # early: the signal is handled some steps after the log shows this one
    rc_full = runner.run(case, over_full, full)
    rc_stop = _stop_at(runner, runner.start(case, over_cut, cut), cut, stop_step)
    rc_resume = runner.run(case, over_cut, cut) if rc_stop == 143 else None
    preempted, resumed = _events(cut, "preempted"), _events(cut, "resume")
    out: dict[str, Any] = {
        "task": case.name, "amp": amp, "total_steps": total, "signal_after_step": stop_step,
        "exit_codes": {"uninterrupted": rc_full, "sigterm": rc_stop, "resume": rc_resume},
        "stopped_at": preempted[-1]["step"] if preempted else None,
        "resumed_at": resumed[-1]["step"] if resumed else None,
        "losses_finite": _losses_finite(full, cut),
    }  # fmt: skip
    out["ok"] = (
        rc_full == 0 and rc_stop == 143 and rc_resume == 0 and out["losses_finite"]
        and out["stopped_at"] is not None and out["stopped_at"] == out["resumed_at"] and out["stopped_at"] < total
    )  # fmt: skip
    if out["stopped_at"] == total:
        out["problem"] = (
            "the SIGTERM landed after the last step: nothing was resumed (raise the case's steps)"
        )
    if rc_full == 0 and rc_resume == 0:
        a, b = _final(case, over_full, full), _final(case, over_cut, cut)
        out["compare"] = compare_tensors(a.tensors, b.tensors)
        out["amp_scaler"] = {"uninterrupted": a.state.get("amp_scaler"), "resumed": b.state.get("amp_scaler")}
        out["exact"] = a.state.get("amp_scaler") == b.state.get("amp_scaler") and all(
            g["identical"] == g["tensors"] and not g["only_in_one"] for g in out["compare"].values()
        )
    else:
        out["stderr_tail"] = {"uninterrupted": _tail(full), "cut": _tail(cut)}
    return out
