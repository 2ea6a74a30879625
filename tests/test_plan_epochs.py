"""`warmstart plan` counts steps per epoch from the task like `train` does, so both agree on the schedule."""

from __future__ import annotations

import json

from app.cli import main
from tests.train_helpers import ROOT, run_inprocess, tiny_overrides

EPOCHS = {"schedule.total_steps": "null", "schedule.epochs": 2, "schedule.warmup.steps": "null",
          "schedule.warmup.epochs": 0.25}  # fmt: skip


def test_plan_and_train_agree_on_an_epoch_based_schedule(tmp_path, capsys):
    ov = tiny_overrides(tmp_path, **EPOCHS)
    args = ["plan", "-c", str(ROOT / "configs/demo.yaml"), "--json"] + [a for o in ov for a in ("--set", o)]
    assert main(args) == 0
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert first == "steps per epoch: 84 (counted from the digits training data)"  # 1348 // 16
    plan = json.loads(rest)
    assert plan["total_steps"] == 168

    rc, session = run_inprocess(ov, stop_at=0)
    assert rc == 143
    assert session.schedule.total_steps == 168 and session.schedule.warmup_steps == 21
    assert session.schedule.lr_table() == plan["lr"]
