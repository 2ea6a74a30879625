"""``python -m app.gpucheck`` (``make gpu-check``): the GPU acceptance run, end to end, into one report.

On a CUDA machine: for each task kind and each AMP dtype the GPU runs (fp16 from compute capability 7.0,
bf16 from 8.0 with CUDA >= 11), train -> SIGTERM -> resume against an uninterrupted run
(:mod:`app.gpucheck.resume`); then, per task, the checkpoint stall, loop throughput and data wait
(:mod:`app.gpucheck.measure`); ``nvidia-smi`` and Paddle's build facts; ``report.json`` + ``report.md``
in ``--out``. Without a GPU it prints one line and exits 0. ``--device cpu`` is the test mode: the same
run on the CPU standing in for a GPU of compute capability 8.0 (:mod:`app.gpucheck.standin`).

Exit codes: 0 = report written and every resume check held (or no GPU); 1 = report written, a check
failed; 2 = bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import app  # noqa: F401  (zlib before paddle)
from app.gpucheck import smi, sysinfo
from app.gpucheck.cases import CASES
from app.gpucheck.resume import Runner, resume_trial

__all__ = ["main", "amp_modes", "build_parser"]

log = logging.getLogger(__name__)
SIMULATED_CAPABILITY = "8.0"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.gpucheck", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", type=Path, default=Path("runs/gpu-check"), help="report folder (default %(default)s)"
    )
    p.add_argument("--device", choices=["gpu", "cpu"], default="gpu",
                   help="gpu (default); cpu = test mode, the CPU standing in for a GPU")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny sizes (the CPU test mode uses them)")
    p.add_argument(
        "--tasks", type=_tasks, default=list(CASES), help="comma-separated task kinds (default: all)"
    )
    p.add_argument(
        "--amp", type=_modes, default=None, help="comma-separated AMP modes (default: what the device runs)"
    )
    p.add_argument("--reps", type=int, default=None, help="alternating repetitions per measurement")
    p.add_argument("--no-measure", action="store_true", help="only the resume checks")
    return p


def amp_modes(device: Any) -> list[str]:
    """fp16 and bf16 where the device runs them (:func:`app.train.amp.resolve`); else ``off``."""
    from app.train.amp import resolve

    modes = [m for m in ("fp16", "bf16") if resolve(m, device).dtype is not None]
    return modes or ["off"]


def _tasks(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown task kind(s) {', '.join(unknown)}; choose from {', '.join(CASES)}"
        )
    return names


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in ("off", "auto", "fp16", "bf16") for m in modes):
        raise argparse.ArgumentTypeError("use a comma-separated list of fp16, bf16, auto, off")
    return modes


def _device_for(ns: argparse.Namespace) -> tuple[Any, str | None]:
    """(the device AMP resolution sees, the simulated capability in CPU test mode)."""
    from app.train import amp

    if ns.device == "cpu":
        major, _, minor = SIMULATED_CAPABILITY.partition(".")
        return amp.Device("gpu", (int(major), int(minor)), "11.8"), SIMULATED_CAPABILITY
    return amp.probe_device(), None


def _simulating(simulate: str | None, incr_every: int) -> contextlib.AbstractContextManager:
    if simulate is None:
        return contextlib.nullcontext()
    from app.gpucheck.standin import simulated_gpu

    major, _, minor = simulate.partition(".")
    return simulated_gpu((int(major), int(minor)), incr_every_n_steps=incr_every)


def _measure(ns: argparse.Namespace, tasks: list[str], modes: list[str], simulate: str | None) -> list[dict]:
    from app.gpucheck.measure import measure_case

    reps = ns.reps or (1 if ns.quick else 3)
    out = []
    for name in tasks:
        mode = "bf16" if "bf16" in modes else modes[0]  # one mode per task: the one without loss scaling
        try:
            with _simulating(simulate, 1000):
                out.append(measure_case(CASES[name], mode, ns.out / "measure" / name, ns.out / "data",
                                        ns.quick, reps))  # fmt: skip
        except Exception as exc:  # noqa: BLE001  (a report records what failed and goes on)
            log.exception("measurement of %s failed", name)
            out.append({"task": name, "amp": mode, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
    return out


def _notes(simulate: str | None) -> list[str]:
    notes = ["exact resume = final model, optimizer and task tensors and the fp16 loss-scaler state "
             "bit-identical to the uninterrupted run; on a GPU, nondeterministic AMP kernels can make it "
             "differ (max abs diff shown) without the resume being wrong"]  # fmt: skip
    if simulate:
        notes.insert(0, f"TEST MODE: no GPU was used. The CPU stood in for a GPU of compute capability {simulate}: "
                     "Paddle 2.6 runs no mixed precision on a CPU, so every number here is float32; the AMP "
                     "code path, the loss scaler and the report's logic ran, fp16/bf16 numerics did not.")  # fmt: skip
    return notes


def run_check(ns: argparse.Namespace) -> dict[str, Any]:
    tasks = ns.tasks
    device, simulate = _device_for(ns)
    modes = ns.amp or amp_modes(device)
    raw = smi.run_smi() if ns.device == "gpu" else smi.SmiOutput(error="not run (--device cpu)")
    runner = Runner(ns.device, simulate, scaler_incr_every=2 if simulate else 1000,
                    timeout=600.0 if ns.quick else 3600.0)  # fmt: skip
    started = time.monotonic()
    resume = [
        resume_trial(runner, CASES[name], mode, ns.out / "resume", ns.out / "data", ns.quick)
        for name in tasks
        for mode in modes
    ]
    measurements = [] if ns.no_measure else _measure(ns, tasks, modes, simulate)
    return {
        "schema": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "mode": {
            "device": ns.device,
            "quick": ns.quick,
            "simulated_gpu": simulate,
            "tasks": tasks,
            "amp": modes,
        },
        "host": sysinfo.host_facts(),
        "paddle": sysinfo.paddle_facts(ns.device),
        "nvidia_smi": {"raw": {"banner": raw.banner, "query": raw.query}, "parsed": smi.summary(raw)},
        "resume": resume,
        "measurements": measurements,
        "ok": all(t["ok"] for t in resume),
        "seconds": round(time.monotonic() - started, 1),
        "notes": _notes(simulate),
    }


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="gpu-check: %(message)s", stream=sys.stderr)
    if ns.device == "gpu":
        visible, why = sysinfo.gpu_visible()
        if not visible:
            print(f"gpu-check: no CUDA GPU: {why}; nothing to check (docs/gpu.md says how to run it on one)")
            return 0
    for sub in ("resume", "measure"):  # a rerun starts clean; data/ is kept (generated once)
        shutil.rmtree(ns.out / sub, ignore_errors=True)
    report = run_check(ns)
    from app.gpucheck.report import write_report

    js, md = write_report(report, ns.out)
    print(f"gpu-check: {'ok' if report['ok'] else 'FAILED'}: report {js} and {md}")
    return 0 if report["ok"] else 1
