"""The check's report: ``report.json`` (everything) and ``report.md`` (a short summary to paste in a bug)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_report", "markdown"]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _env_lines(report: dict[str, Any]) -> list[str]:
    paddle, smi, host = report["paddle"], report["nvidia_smi"]["parsed"], report["host"]
    gpus = smi.get("gpus") or []
    gpu_text = "; ".join(
        f"{g.get('name')} ({_fmt(g.get('memory_total_mib'))} MiB, compute capability {_fmt(g.get('compute_cap'))})"
        for g in gpus
    )
    return [
        f"- mode: device {report['mode']['device']}, quick {report['mode']['quick']}"
        + (f", **CPU standing in for a GPU of compute capability {report['mode']['simulated_gpu']}**"
           if report["mode"].get("simulated_gpu") else ""),
        f"- GPU(s): {gpu_text or 'none reported by nvidia-smi'}",
        f"- driver {_fmt(smi.get('driver_version'))}, driver's CUDA {_fmt(smi.get('cuda_version_driver'))}"
        + (f" (nvidia-smi: {smi['error']})" if smi.get("error") else ""),
        f"- Paddle {paddle.get('paddle_version')} (CUDA {_fmt(paddle.get('cuda'))}, cuDNN {_fmt(paddle.get('cudnn'))}, "
        f"device {paddle.get('device')}, capability {_fmt(paddle.get('capability'))})",
        f"- warmstart {host['warmstart_version']}, Python {host['python']}, {host['cpu_count']} CPUs, "
        f"load {host['loadavg']}",
    ]  # fmt: skip


def _resume_rows(report: dict[str, Any]) -> list[str]:
    rows = ["| task | amp | exit codes (full, SIGTERM, resume) | stopped → resumed | losses finite | "
            "bit-identical to uninterrupted | max abs diff | ok |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in report["resume"]:
        codes = t["exit_codes"]
        diff = max((g["max_abs_diff"] for g in t.get("compare", {}).values()), default=None)
        rows.append(
            f"| {t['task']} | {t['amp']} | {codes['uninterrupted']}, {codes['sigterm']}, {_fmt(codes['resume'])} "
            f"| {_fmt(t['stopped_at'])} → {_fmt(t['resumed_at'])} | {t['losses_finite']} | {_fmt(t.get('exact'))} "
            f"| {_fmt(diff)} | {'yes' if t['ok'] else '**no**'} |"
        )
    return rows


def _measure_rows(report: dict[str, Any]) -> list[str]:
    rows = ["| task | amp | state MiB | save stall / pure copy | our loop / bare loop | data wait ms/step "
            "(share of step) | load before → after |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in report["measurements"]:
        if "error" in m:
            rows.append(f"| {m['task']} | {m['amp']} | error: {m['error']} | | | | |")
            continue
        st, lp = m["stall_vs_copy"], m["loop_vs_bare"]
        dw = lp["data_wait"]
        rows.append(
            f"| {m['task']} | {m['amp']} | {st['state_mb']} | {_fmt(st['ratio_median'])}× | "
            f"{_fmt(lp['ratio_median'])}× | {_fmt(dw['median_ms_per_step'])} ({_fmt(dw['share_of_step'])}) | "
            f"{m['loadavg_before']} → {m['loadavg_after']} ({m['cpu_count']} CPUs) |"
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    verdict = "all resume checks passed" if report["ok"] else "**some checks failed** (see report.json)"
    lines = [
        f"# warmstart gpu-check — {verdict}",
        "",
        f"Created {report['created']}.",
        "",
        *_env_lines(report),
    ]
    lines += ["", "## Train → SIGTERM → resume vs uninterrupted", "", *_resume_rows(report)]
    lines += ["", "## Measurements (medians of alternating repetitions; ratios ours / anchor)", "",
              *_measure_rows(report), ""]  # fmt: skip
    lines += [f"- {note}" for note in report.get("notes", [])]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "report.json", out / "report.md"
    js.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    md.write_text(markdown(report))
    return js, md
