"""``make gpu-check`` without a GPU: what ``train.amp`` resolves to per device; the AMP code path of the real
loop (bf16 autocast branch, fp16 loss scaler saved and restored) on the CPU standing in for a GPU; the
report's ``nvidia-smi`` parsing from recorded outputs; the no-GPU line; and the whole check end to end
in its CPU test mode (``--device cpu --quick``). Nothing here runs on a GPU (docs/gpu.md)."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import paddle
import pytest

from app.checkpoint import CheckpointManager
from app.config import load_config
from app.gpucheck import smi
from app.gpucheck.cases import CASES, case_overrides
from app.gpucheck.report import markdown
from app.gpucheck.standin import cpu_grad_scaler, simulated_gpu
from app.store import open_store
from app.train import amp
from tests.train_helpers import (
    ROOT,
    assert_same_tensors,
    clean_env,
    run_inprocess,
    tiny_overrides,
    train_losses,
)

FIX = ROOT / "tests" / "fixtures" / "nvidia_smi"
CPU = amp.Device("cpu")
PASCAL, TURING = amp.Device("gpu", (6, 1), "11.8"), amp.Device("gpu", (7, 5), "11.8")
AMPERE, AMPERE_CUDA10 = amp.Device("gpu", (8, 0), "11.8"), amp.Device("gpu", (8, 0), "10.2")


# --- (a) train.amp per device, and the AMP code path of the real loop -------------------------------------


@pytest.mark.parametrize(
    ("setting", "device", "dtype", "fell_back"),
    [
        ("off", AMPERE, None, False), ("auto", CPU, None, False), ("auto", PASCAL, None, False),
        ("auto", TURING, "float16", False), ("auto", AMPERE, "float16", False),
        ("fp16", CPU, None, True), ("fp16", PASCAL, None, True), ("fp16", TURING, "float16", False),
        ("bf16", CPU, None, True), ("bf16", TURING, None, True), ("bf16", AMPERE_CUDA10, None, True),
        ("bf16", AMPERE, "bfloat16", False),
    ],
)  # fmt: skip
def test_train_amp_resolves_per_device(
    setting: str, device: amp.Device, dtype: str | None, fell_back: bool
) -> None:
    plan = amp.resolve(setting, device)
    assert (plan.dtype, plan.fell_back, plan.loss_scaling) == (dtype, fell_back, dtype == "float16")


def test_explicit_amp_on_this_cpu_falls_back_to_float32_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="app.train.amp"):
        plans = {s: amp.plan_for(s) for s in ("auto", "fp16", "bf16")}
    assert {s: p.dtype for s, p in plans.items()} == {"auto": None, "fp16": None, "bf16": None}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "precision: float32: train.amp: fp16 ignored, fp16 needs a CUDA GPU (Paddle runs no mixed precision on "
        "cpu); set train.amp: auto or off to silence this",
        "precision: float32: train.amp: bf16 ignored, bf16 needs a CUDA GPU (Paddle runs no mixed precision on "
        "cpu); set train.amp: auto or off to silence this",
    ]
    assert amp.make_scaler(plans["fp16"]) is None


def _ocr(run: Path, data: Path, **extra: object) -> list[str]:
    return case_overrides(CASES["ocr_rec"], run, data, "bf16", True, **{"schedule.total_steps": 6, **extra})


TRAINERS = {
    "digits": ("configs/demo.yaml", lambda run, data, **x: tiny_overrides(run, **{
        "train.amp": "bf16", "schedule.total_steps": 12, "train.eval_every_steps": "null",
        "checkpoint.every_steps": 100, "checkpoint.uri": run / "ckpt", **x})),
    "ocr_rec": ("configs/ocr_rec_small.yaml", _ocr),
}  # fmt: skip


def _latest(config: str, over: list[str], run: Path):
    cfg = load_config(ROOT / config, over, env={})
    mgr = CheckpointManager(open_store(str(run / "ckpt"), cfg.store), cfg.checkpoint, run / "read")
    try:
        return mgr.load(mgr.latest())
    finally:
        mgr.close()


@pytest.mark.parametrize("task", ["digits", "ocr_rec"])
def test_bf16_autocast_branch_trains_checkpoints_and_resumes_exactly(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, make = TRAINERS[task]
    dtypes: list[str] = []
    real = paddle.amp.auto_cast
    monkeypatch.setattr(paddle.amp, "auto_cast", lambda **kw: dtypes.append(kw.get("dtype")) or real(**kw))
    full, cut, data = tmp_path / "full", tmp_path / "cut", tmp_path / "data"
    with simulated_gpu((8, 0)):
        assert run_inprocess(make(full, data), config=config)[0] == 0
        assert run_inprocess(make(cut, data), stop_at=3, config=config)[0] == 143
        rc, session = run_inprocess(make(cut, data), config=config)
    assert rc == 0 and session.amp_dtype == "bfloat16" and session.scaler is None
    assert set(dtypes) == {"bfloat16"} and len(dtypes) >= 2 * 6  # every micro-step ran under the autocast
    losses = train_losses(full / "log.jsonl")
    assert sorted(losses) == list(range(1, len(losses) + 1)) and all(
        math.isfinite(v) for v in losses.values()
    )
    a, b = _latest(config, make(full, data), full), _latest(config, make(cut, data), cut)
    assert a.state["amp_scaler"] is None and b.state["step"] == a.state["step"]
    for group in a.tensors:
        assert_same_tensors(a.tensors[group], b.tensors[group])


def _scaler_state(scale: float, incr: int) -> dict:
    return {"scale": [scale], "incr_ratio": 2.0, "decr_ratio": 0.5, "incr_every_n_steps": 3,
            "decr_every_n_nan_or_inf": 1, "incr_count": incr, "decr_count": 0, "use_dynamic_loss_scaling": True}  # fmt: skip


def test_fp16_loss_scale_is_checkpointed_and_restored_so_resume_stays_exact(tmp_path: Path) -> None:
    """The scale doubles every 3 finite steps: 2**15 at start, 2**16 + count 2 at step 5, 2**19 at step 12.
    A resume that dropped the saved state would end at 2**17 with count 1."""
    make = TRAINERS["digits"][1]
    over = {"train.amp": "fp16"}
    full, cut = tmp_path / "full", tmp_path / "cut"
    with simulated_gpu((7, 5), incr_every_n_steps=3):
        assert run_inprocess(make(full, None, **over))[0] == 0
        assert run_inprocess(make(cut, None, **over), stop_at=5)[0] == 143
        stopped = _latest("configs/demo.yaml", make(cut, None, **over), cut)
        rc, session = run_inprocess(make(cut, None, **over))
    assert rc == 0 and session.amp_dtype == "float16" and session.scaler.is_enable()
    assert stopped.state["step"] == 5 and stopped.state["amp_scaler"] == _scaler_state(2.0**16, 2)
    a = _latest("configs/demo.yaml", make(full, None, **over), full)
    b = _latest("configs/demo.yaml", make(cut, None, **over), cut)
    assert a.state["amp_scaler"] == b.state["amp_scaler"] == _scaler_state(2.0**19, 0)
    assert_same_tensors(a.tensors["model"], b.tensors["model"])


def test_a_skipped_fp16_step_is_logged_not_printed_between_the_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """A scale of 2**127 doubled after one finite step overflows: every later step is skipped and Paddle
    prints so; that print must not land on stdout, whose lines are the JSON log."""
    make = TRAINERS["digits"][1]
    over = {"train.amp": "fp16", "schedule.total_steps": 4, "schedule.warmup.steps": 1}
    with simulated_gpu((7, 5), incr_every_n_steps=1, init_loss_scaling=2.0**127):
        with caplog.at_level(logging.WARNING, "app.train.amp"):
            rc, session = run_inprocess(make(tmp_path, None, **over))
    assert rc == 0 and session.scaler.state_dict()["scale"].tolist() == [math.inf]
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert kinds.count("train") == 4
    assert [r.getMessage() for r in caplog.records if r.name == "app.train.amp"] == [
        f"fp16 loss scaling at step {step}: Found inf or nan, current scale is: inf, decrease to: inf*0.5"
        for step in (2, 3, 4)
    ]


def test_restoring_the_scaler_across_a_precision_change_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    saved = _scaler_state(2.0**16, 2)
    scaler = cpu_grad_scaler(incr_every_n_steps=3)
    with caplog.at_level(logging.INFO, logger="app.train.amp"):
        amp.restore_scaler(scaler, saved, "ck/step-5")
        amp.restore_scaler(None, saved, "ck/step-5")
        amp.restore_scaler(scaler, None, "ck/step-7")
    assert scaler.state_dict()["scale"].tolist() == [2.0**16]  # restored by the first call, kept by the last
    assert [r.getMessage() for r in caplog.records] == [
        "ck/step-5 was trained with fp16 loss scaling; this run is not fp16, its scale is dropped",
        "ck/step-7 holds no fp16 loss-scaler state: loss scaling starts at its initial scale",
    ]


def test_cpu_stand_in_scaler_skips_a_non_finite_step_and_halves_the_scale() -> None:
    paddle.seed(0)
    net = paddle.nn.Linear(4, 2)
    opt = paddle.optimizer.AdamW(parameters=net.parameters(), learning_rate=0.01)
    scaler = cpu_grad_scaler()
    before = net.weight.numpy().copy()
    with paddle.amp.auto_cast(dtype="float16"):  # Paddle's scaler works only after an fp16 autocast
        loss = net(paddle.ones([2, 4])).mean() * float("inf")
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert (net.weight.numpy() == before).all()
    assert scaler.state_dict()["scale"].tolist() == [2.0**14]


# --- (b) nvidia-smi parsing from recorded outputs ----------------------------------------------------------


def test_banner_of_a_535_driver_with_one_a100() -> None:
    parsed = smi.parse_banner((FIX / "a100_banner.txt").read_text())
    assert parsed == {
        "smi_version": "535.129.03", "driver_version": "535.129.03", "cuda_version": "12.2",
        "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "bus_id": "00000000:00:04.0",
                  "memory_used_mib": 4, "memory_total_mib": 40960}],
    }  # fmt: skip


def test_banner_of_a_470_driver_with_two_t4s() -> None:
    parsed = smi.parse_banner((FIX / "t4x2_banner.txt").read_text())
    assert (parsed["driver_version"], parsed["cuda_version"]) == ("470.182.03", "11.4")
    assert [(g["index"], g["name"], g["memory_used_mib"], g["memory_total_mib"]) for g in parsed["gpus"]] == [
        (0, "Tesla T4", 0, 15109), (1, "Tesla T4", 1337, 15109),
    ]  # fmt: skip


def test_query_csv_units_dropped_numbers_as_numbers() -> None:
    assert smi.parse_query((FIX / "a100_query.csv").read_text()) == [
        {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "driver_version": "535.129.03",
         "memory_total_mib": 40960, "memory_used_mib": 4, "compute_cap": "8.0"},
    ]  # fmt: skip
    assert smi.parse_query("index, name, memory.used [MiB]\n0, Tesla T4, [N/A]\n") == [
        {"index": 0, "name": "Tesla T4", "memory_used_mib": None}
    ]
    assert smi.parse_query("") == [] and smi.parse_banner("garbage") == {"gpus": []}


def _fake_smi(tmp_path: Path, banner: str, query: str, rejects_compute_cap: bool) -> str:
    script = tmp_path / "nvidia-smi"
    reject = (
        f'  *compute_cap*) cat "{FIX / "t4x2_query_error.txt"}"; exit 2;;\n' if rejects_compute_cap else ""
    )
    script.write_text(
        f'#!/bin/sh\ncase "$*" in\n{reject}  *--query-gpu*) cat "{FIX / query}";;\n  *) cat "{FIX / banner}";;\nesac\n'
    )
    script.chmod(0o755)
    return str(script)


def test_run_smi_asks_an_old_driver_again_without_compute_cap(tmp_path: Path) -> None:
    out = smi.run_smi(_fake_smi(tmp_path, "t4x2_banner.txt", "t4x2_query.csv", rejects_compute_cap=True))
    assert out.error is None and out.query == (FIX / "t4x2_query.csv").read_text()
    summary = smi.summary(out)
    assert (summary["driver_version"], summary["cuda_version_driver"]) == ("470.182.03", "11.4")
    assert [g["memory_used_mib"] for g in summary["gpus"]] == [0, 1337] and "compute_cap" not in summary[
        "gpus"
    ][0]


def test_run_smi_missing_is_recorded_not_raised() -> None:
    out = smi.run_smi("no-such-nvidia-smi")
    assert (out.banner, out.query) == (None, None) and out.error.startswith("no-such-nvidia-smi not found")
    assert smi.summary(out) == {
        "driver_version": None,
        "cuda_version_driver": None,
        "gpus": [],
        "error": out.error,
    }


def test_markdown_of_a_gpu_report_names_gpu_driver_cuda_and_paddle(tmp_path: Path) -> None:
    raw = smi.run_smi(_fake_smi(tmp_path, "a100_banner.txt", "a100_query.csv", rejects_compute_cap=False))
    report = {
        "created": "2026-11-30T21:14:03Z", "ok": False, "notes": [],
        "mode": {"device": "gpu", "quick": False, "simulated_gpu": None},
        "host": {"warmstart_version": "0.1.0", "python": "3.10.12", "cpu_count": 12, "loadavg": [0.5]},
        "paddle": {"paddle_version": "2.6.2", "cuda": "11.8", "cudnn": 8906, "device": "gpu:0", "capability": [8, 0]},
        "nvidia_smi": {"parsed": smi.summary(raw)},
        "resume": [{"task": "ocr_rec", "amp": "fp16", "ok": False, "stopped_at": 20, "resumed_at": 20,
                    "losses_finite": False, "exact": False, "exit_codes": {"uninterrupted": 0, "sigterm": 143, "resume": 0},
                    "compare": {"model": {"max_abs_diff": 0.25}}}],
        "measurements": [{"task": "ocr_rec", "amp": "fp16", "error": "TaskError: boom"}],
    }  # fmt: skip
    text = markdown(report)
    assert "# warmstart gpu-check — **some checks failed**" in text
    assert "- GPU(s): NVIDIA A100-SXM4-40GB (40960 MiB, compute capability 8.0)" in text
    assert "- driver 535.129.03, driver's CUDA 12.2" in text
    assert "- Paddle 2.6.2 (CUDA 11.8, cuDNN 8906, device gpu:0, capability [8, 0])" in text
    assert "| ocr_rec | fp16 | 0, 143, 0 | 20 → 20 | False | False | 0.25 | **no** |" in text
    assert "| ocr_rec | fp16 | error: TaskError: boom | | | | |" in text


# --- (c) no GPU, (d) the whole check in its CPU test mode --------------------------------------------------


def _check(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "app.gpucheck", *args]
    return subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=timeout)


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path: Path) -> None:
    proc = _check("--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == (
        "gpu-check: no CUDA GPU: this Paddle (2.6.2) is a CPU build (paddle.is_compiled_with_cuda() is False); "
        "nothing to check (docs/gpu.md says how to run it on one)\n"
    )
    assert not (tmp_path / "report").exists()


def test_a_cuda_build_that_sees_no_device_is_no_gpu_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.gpucheck import cli, sysinfo

    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(paddle.version, "cuda", lambda: "11.8")
    assert sysinfo.gpu_visible() == (False, "Paddle is built with CUDA 11.8 but sees no GPU (device_count 0)")
    assert cli.main(["--out", "/nonexistent/never-written"]) == 0


def test_bad_arguments_exit_2_naming_the_option() -> None:
    proc = _check("--tasks", "digits,segmentation")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "python -m app.gpucheck: error: argument --tasks: unknown task kind(s) segmentation; "
        "choose from digits, ocr_rec, detection, nlp_seq_cls"
    )


def test_every_case_config_loads_full_and_quick(tmp_path: Path) -> None:
    for case in CASES.values():
        for quick in (True, False):
            over = case_overrides(case, tmp_path / "run", tmp_path / f"data{quick}", "fp16", quick)
            cfg = load_config(ROOT / case.config, over, env={})
            assert (cfg.task.kind, cfg.train.amp, cfg.schedule.total_steps) == (
                case.name,
                "fp16",
                case.total_steps(quick),
            )
            assert cfg.checkpoint.every_steps is None or cfg.checkpoint.every_steps > cfg.schedule.total_steps


def test_amp_modes_checked_are_the_ones_the_device_runs() -> None:
    from app.gpucheck.cli import amp_modes

    assert [amp_modes(d) for d in (CPU, PASCAL, TURING, AMPERE_CUDA10, AMPERE)] == [
        ["off"],
        ["off"],
        ["fp16"],
        ["fp16"],
        ["fp16", "bf16"],
    ]


def test_cpu_test_mode_runs_the_whole_check_and_writes_the_report(tmp_path: Path) -> None:
    """digits in fp16 (the loss-scaled dtype; bf16's loop path is covered in-process above), real SIGTERM."""
    out = tmp_path / "gpu-check"
    proc = _check("--device", "cpu", "--quick", "--tasks", "digits", "--amp", "fp16", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        proc.stdout.splitlines()[-1] == f"gpu-check: ok: report {out / 'report.json'} and {out / 'report.md'}"
    )
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == {"device": "cpu", "quick": True, "simulated_gpu": "8.0", "tasks": ["digits"],
                              "amp": ["fp16"]}  # fmt: skip
    assert report["ok"] is True and report["paddle"]["paddle_version"] == paddle.__version__
    (trial,) = report["resume"]
    assert (trial["task"], trial["amp"]) == ("digits", "fp16")
    assert trial["exit_codes"] == {"uninterrupted": 0, "sigterm": 143, "resume": 0}
    assert trial["ok"] and trial["exact"] and trial["losses_finite"]
    assert 1 <= trial["stopped_at"] == trial["resumed_at"] < trial["total_steps"]
    assert all(g["identical"] == g["tensors"] > 0 for g in trial["compare"].values())
    scaler = trial["amp_scaler"]
    assert scaler["uninterrupted"] == scaler["resumed"] and scaler["resumed"]["incr_every_n_steps"] == 2
    assert scaler["resumed"]["scale"] == [2.0 ** (15 + trial["total_steps"] // 2)]  # doubled every 2 steps
    (m,) = report["measurements"]
    assert m["stall_vs_copy"]["anchor"].startswith("a copy into host buffers reused across saves")
    assert (m["task"], m["amp"], m["cpu_count"]) == ("digits", "fp16", report["host"]["cpu_count"])
    for value in (m["stall_vs_copy"]["ratio_median"], m["loop_vs_bare"]["ratio_median"],
                  m["loop_vs_bare"]["data_wait"]["median_ms_per_step"]):  # fmt: skip
        assert isinstance(value, float) and math.isfinite(value) and value > 0
    text = (out / "report.md").read_text()
    assert "TEST MODE: no GPU was used" in text and "| digits | fp16 | 0, 143, 0 |" in text
