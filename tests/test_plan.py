"""``warmstart plan``: the text table, ``--json`` values, ``--plot`` PNG, and config errors (exit code 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from PIL import Image

from app.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write_config(tmp_path: Path, schedule: dict, **extra: dict) -> str:
    data = {"task": {"kind": "digits"}, "optim": {"name": "adamw"}, "schedule": schedule, **extra}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


LINEAR_COSINE = {
    "base_lr": 0.01,
    "total_steps": 100,
    "warmup": {"kind": "linear", "steps": 10, "start_lr": 0.001},
    "decay": {"kind": "cosine", "min_lr": 0.0001},
}


def expected_linear_cosine(t: int) -> float:
    if t <= 10:
        return 0.001 + (0.01 - 0.001) * t / 10
    return 0.0001 + (0.01 - 0.0001) * 0.5 * (1 + math.cos(math.pi * (t - 10) / 90))


def test_plan_json_prints_one_lr_per_optimizer_step(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["plan", "--config", write_config(tmp_path, LINEAR_COSINE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"total_steps", "lr", "warnings", "notes"}
    assert out["total_steps"] == 100
    assert len(out["lr"]) == 100
    assert out["lr"] == pytest.approx([expected_linear_cosine(t) for t in range(100)], rel=1e-12)
    assert out["warnings"] == []


def test_plan_json_carries_warnings_and_notes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    schedule = {"base_lr": 0.01, "total_steps": 1000, "warmup": {"steps": 600, "start_lr": 0.0}}
    assert main(["plan", "--config", write_config(tmp_path, schedule), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["warnings"]) == 3  # > 10 %, > 500 in a short run, start_lr 0 with adamw
    assert out["lr"][600] == pytest.approx(0.01)


def test_plan_text_lists_key_steps_notes_and_warnings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    schedule = {**LINEAR_COSINE, "warmup": {"steps": "auto", "start_lr": 0.0}}
    assert (
        main(["plan", "--config", write_config(tmp_path, schedule), "--set", "schedule.total_steps=200"]) == 0
    )
    out = capsys.readouterr().out
    rows = {int(line.split()[0]): line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert sorted(rows) == [0, 12, 50, 100, 150, 199, 200]
    assert "decay (cosine) starts" in rows[12]
    assert "end (value after the last step())" in rows[200]
    assert float(rows[200].split()[1]) == pytest.approx(0.0001)
    assert "warmup.steps=auto -> 12 (6% of 200)" in out
    assert "start_lr is 0 with adamw" in out


def test_plan_uses_train_batch_for_scaling_and_accepts_global_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    schedule = {"base_lr": 0.01, "total_steps": 50, "scaling": {"lr_rule": "linear", "reference_batch": 16}}
    path = write_config(tmp_path, schedule, train={"batch_size": 8, "grad_accum_steps": 4})
    assert main(["plan", "--config", path, "--json"]) == 0
    assert max(json.loads(capsys.readouterr().out)["lr"]) == pytest.approx(0.02)
    assert main(["plan", "--config", path, "--json", "--global-batch", "64"]) == 0
    assert max(json.loads(capsys.readouterr().out)["lr"]) == pytest.approx(0.04)


def test_plan_plot_writes_a_valid_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    png = tmp_path / "out" / "lr.png"
    config = str(CONFIGS / "schedule_exp_poly_plateau.yaml")
    assert main(["plan", "--config", config, "--plot", str(png)]) == 0
    assert str(png) in capsys.readouterr().out
    with Image.open(png) as img:
        img.verify()
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert img.width > 300 and img.height > 300
        # a drawn curve, not a blank canvas
        assert len(img.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 20


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["schedule.total_steps=3000", "schedule.warmup.steps=5000"],
            "schedule.warmup.steps (5000) exceeds schedule.total_steps (3000)",
        ),
        (
            ["schedule.total_steps=null", "schedule.epochs=2", "task.kind=digitz"],
            "task.kind: unknown task 'digitz'; did you mean 'digits'?",
        ),
        (["schedule.decay.kind=cosinus"], "did you mean 'cosine'?"),
    ],
)
def test_plan_config_errors_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture, overrides: list[str], message: str
) -> None:
    args = ["plan", "--config", write_config(tmp_path, LINEAR_COSINE)]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.startswith("warmstart: config: ")
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_plan_epochs_with_steps_per_epoch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    schedule = {"base_lr": 0.01, "epochs": 3, "warmup": {"epochs": 0.5}, "decay": {"kind": "constant"}}
    assert (
        main(["plan", "--config", write_config(tmp_path, schedule), "--steps-per-epoch", "8", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["total_steps"] == 24
    assert out["lr"][:5] == pytest.approx([0.0, 0.0025, 0.005, 0.0075, 0.01])
