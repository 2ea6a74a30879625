"""What a user sees: JSON log lines (stdout and file), events, VisualDL scalars, the plot of a real run."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from app.cli import main
from tests.train_helpers import run_inprocess, tiny_overrides


def test_json_lines_on_stdout_and_file_with_expected_fields(tmp_path, capsys):
    ov = tiny_overrides(tmp_path, **{"schedule.total_steps": 12, "schedule.warmup.steps": 4,
                                     "train.log_every_steps": 4, "train.eval_every_steps": 6})  # fmt: skip
    assert run_inprocess(ov)[0] == 0
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    printed = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert printed == lines
    records = [json.loads(x) for x in lines]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [4, 8, 12]
    assert all(
        set(r) == {"kind", "step", "epoch", "lr", "loss", "samples_per_s", "eta_s", "time"} for r in train
    )
    # the LR used by the 4th update (t = 3) of a linear warmup 0.0001 -> 0.003 over 4 steps
    assert train[0]["lr"] == pytest.approx(0.0001 + (0.003 - 0.0001) * 3 / 4)
    assert train[-1]["eta_s"] == 0.0 and all(r["samples_per_s"] > 0 for r in train)
    evals = [r["step"] for r in records if r["kind"] == "eval"]
    assert evals == [6, 12]
    events = [(r["step"], r["event"]) for r in records if r["kind"] == "event"]
    assert events[0] == (0, "cold_start") and events[-1] == (12, "done")
    assert (12, "checkpoint") in events


def test_unfreeze_event_and_visualdl_scalars(tmp_path):
    from visualdl import LogReader

    ov = tiny_overrides(tmp_path, **{"schedule.total_steps": 8, "schedule.warmup.steps": 2,
                                     "train.visualdl": "true", "train.log_every_steps": 2,
                                     "freeze": "[{patterns: ['backbone.*'], until_step: 3}]"})  # fmt: skip
    assert run_inprocess(ov)[0] == 0
    records = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    unfreeze = [r for r in records if r.get("event") == "unfreeze"]
    assert len(unfreeze) == 1 and unfreeze[0]["step"] == 3
    assert sorted(unfreeze[0]["parameters"]) == ["backbone.0.bias", "backbone.0.weight",
                                                  "backbone.2.bias", "backbone.2.weight"]  # fmt: skip
    (logfile,) = (tmp_path / "visualdl").iterdir()
    reader = LogReader(file_path=str(logfile))
    loss = [(x.id, round(x.value, 5)) for x in reader.get_data("scalar", "train/loss")]
    expected = [(r["step"], round(r["loss"], 5)) for r in records if r["kind"] == "train"]
    assert loss == expected
    assert [x.id for x in reader.get_data("scalar", "eval/accuracy")] == [8]


def test_plot_of_a_real_run(tmp_path):
    ov = tiny_overrides(tmp_path, **{"schedule.total_steps": 12, "schedule.warmup.steps": 4})
    assert run_inprocess(ov, stop_at=5)[0] == 143
    assert run_inprocess(ov)[0] == 0
    assert main(["plot", str(tmp_path)]) == 0
    with Image.open(tmp_path / "curves.png") as img:
        img.verify()
        assert img.size[0] >= 800 and img.size[1] >= 400
