"""``warmstart plot``: log.jsonl parsing (duplicates after a resume, torn lines) and the PNG it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from app.cli import main
from app.errors import ConfigError
from app.train.plotting import read_run_log

T0 = "2026-11-23T20:00:00Z"


def lr_at(step: int) -> float:
    return 0.01 * min(step, 4) / 4  # linear warmup over 4 steps, then constant


def train(step: int, loss: float, epoch: int = 0) -> dict:
    return {
        "kind": "train",
        "step": step,
        "epoch": epoch,
        "lr": lr_at(step),
        "loss": loss,
        "samples_per_s": 100.0 + step,
        "eta_s": None if step < 2 else 10.0 - step,
        "time": T0,
    }


def evaluation(step: int, accuracy: float, loss: float) -> dict:
    return {
        "kind": "eval",
        "step": step,
        "epoch": 0,
        "metrics": {"accuracy": accuracy, "loss": loss},
        "time": T0,
    }


def event(step: int, name: str, **extra: object) -> dict:
    return {"kind": "event", "step": step, "event": name, **extra}


def first_attempt() -> list[dict]:
    """Warm start, 7 steps, checkpoint and eval at 4, eval at 6, preempted at 7."""
    rows = [event(0, "warm_start", source="file:///pre#best")]
    rows += [train(s, 2.0 - 0.1 * s) for s in range(1, 5)]
    rows += [evaluation(4, 0.5, 1.5), event(4, "checkpoint", uri="file:///ck/step-4")]
    rows += [train(s, 2.0 - 0.1 * s) for s in range(5, 7)]
    rows += [evaluation(6, 0.6, 1.4), train(7, 1.3), event(7, "preempted")]
    return rows


def second_attempt() -> list[dict]:
    """Resumes from the step-4 checkpoint, repeats steps 5-7 with other losses, runs to 10."""
    rows = [event(4, "resume", checkpoint="file:///ck/step-4")]
    rows += [train(s, 1.9 - 0.1 * s, epoch=1 if s > 8 else 0) for s in range(5, 11)]
    rows += [evaluation(8, 0.7, 1.2), event(8, "checkpoint", uri="file:///ck/step-8")]
    rows += [evaluation(10, 0.8, 1.0), event(10, "done")]
    return rows


def write_log(run_dir: Path, rows: list[dict], tail: str = "") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    # The first attempt was killed mid-write: its last line is torn.
    rows = first_attempt()
    path = write_log(tmp_path / "run", rows, tail='{"kind": "train", "st\n')
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in second_attempt()))
    return tmp_path / "run"


def test_read_run_log_later_lines_win_and_resume_rolls_back(run_dir: Path) -> None:
    run_log = read_run_log(run_dir / "log.jsonl")
    expected_loss = [2.0 - 0.1 * s for s in range(1, 5)] + [1.9 - 0.1 * s for s in range(5, 11)]
    assert [p.step for p in run_log.train] == list(range(1, 11))
    assert [p.loss for p in run_log.train] == expected_loss
    assert [p.lr for p in run_log.train] == [0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]
    assert [p.epoch for p in run_log.train] == [0] * 8 + [1, 1]
    assert run_log.train[0].eta_s is None and run_log.train[1].eta_s == 8.0
    assert run_log.train[4].samples_per_s == 105.0
    # eval at 6 belonged to the rolled-back attempt; eval at 4 precedes the resume step and stays.
    assert [(p.step, p.metrics) for p in run_log.eval] == [
        (4, {"accuracy": 0.5, "loss": 1.5}),
        (8, {"accuracy": 0.7, "loss": 1.2}),
        (10, {"accuracy": 0.8, "loss": 1.0}),
    ]
    assert [(e.step, e.event) for e in run_log.events] == [
        (0, "warm_start"),
        (4, "checkpoint"),
        (7, "preempted"),
        (4, "resume"),
        (8, "checkpoint"),
        (10, "done"),
    ]
    assert run_log.events[3].details == {"checkpoint": "file:///ck/step-4"}
    assert [(e.step, e.event) for e in run_log.markers()] == [(0, "warm_start"), (4, "resume")]
    assert run_log.metric_names() == ["accuracy", "loss"]
    assert run_log.skipped_lines == 1  # the torn line


def test_resume_drops_steps_the_new_attempt_has_not_reached(tmp_path: Path) -> None:
    rows = [train(s, float(s)) for s in range(1, 7)] + [evaluation(6, 0.9, 0.1)]
    rows += [event(3, "resume"), train(4, 40.0), train(5, 50.0)]
    run_log = read_run_log(write_log(tmp_path, rows))
    assert [(p.step, p.loss) for p in run_log.train] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0)]
    assert run_log.eval == []


def test_duplicate_step_without_resume_keeps_last_line(tmp_path: Path) -> None:
    rows = [train(1, 1.0), train(2, 2.0), train(2, 2.5), {"kind": "train", "step": 3}, {"kind": "other"}]
    run_log = read_run_log(write_log(tmp_path, rows, tail="\n\nnot json\n"))
    assert [(p.step, p.loss) for p in run_log.train] == [(1, 1.0), (2, 2.5)]
    assert run_log.skipped_lines == 3


def test_missing_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_run_log(tmp_path / "log.jsonl")


def _check_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_cli_writes_png_with_default_name(run_dir: Path, capsys) -> None:
    assert main(["plot", str(run_dir)]) == 0
    out = run_dir / "curves.png"
    width, height = _check_png(out)
    assert width == 1000 and height > 600  # three panels: loss, lr, eval
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"wrote {out} (steps 1-10")
    assert "1 resume(s)" in stdout
    assert not list(run_dir.glob(".*.tmp"))


def test_cli_out_and_log_lr_without_eval(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    write_log(run, [event(0, "cold_start")] + [train(s, 1.0 / (s + 1)) for s in range(0, 20)])
    out = tmp_path / "elsewhere.png"
    assert main(["plot", str(run), "--out", str(out), "--log-lr"]) == 0  # lr 0 at step 0 on a log axis
    width, height = _check_png(out)
    assert width == 1000 and 400 < height < 700  # two panels
    assert not (run / "curves.png").exists()


@pytest.mark.parametrize(
    "setup, message",
    [
        ("no_dir", "run folder"),
        ("no_log", "does not exist"),
        ("empty_log", "no training lines"),
        ("events_only", "no training lines"),
        ("bad_out", "output folder"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, setup: str, message: str) -> None:
    run = tmp_path / "run"
    args = ["plot", str(run)]
    if setup != "no_dir":
        run.mkdir()
    if setup == "empty_log":
        (run / "log.jsonl").write_text("")
    if setup == "events_only":
        write_log(run, [event(0, "cold_start")])
    if setup == "bad_out":
        write_log(run, [train(1, 1.0)])
        args += ["--out", str(tmp_path / "missing" / "x.png")]
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("warmstart: config: ") and message in lines[0]
    assert "Traceback" not in captured.err
