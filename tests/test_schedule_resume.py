"""A schedule restored from its state_dict (after a JSON round trip) continues with exactly the same LRs.

Resume points cover step 0, mid-warmup, the warmup/decay boundary, stage boundaries, mid-decay, late
decay, the last step and beyond. The restored scheduler is rebuilt from the config, as a new process would.
"""

from __future__ import annotations

import json

import pytest

from app.config.typed import from_data
from app.schedule import FactorSchedule, ScheduleConfig, build_schedule

TOTAL, W = 40, 8

WARMUPS = {
    "linear": {"kind": "linear", "steps": W, "start_lr": 0.001},
    "exponential": {"kind": "exponential", "steps": W, "start_lr": 0.001},
    "none": {"kind": "none"},
    "custom_function": {"kind": "custom", "steps": W, "callable": "app.schedule.examples:quadratic_warmup"},
    "custom_scheduler": {"kind": "custom", "steps": W, "callable": "app.schedule.examples:StepwiseWarmup"},
}
DECAYS = {
    "cosine": {"kind": "cosine", "min_lr": 0.0001},
    "linear": {"kind": "linear"},
    "polynomial": {"kind": "polynomial", "power": 3.0, "end_lr": 0.0002},
    "piecewise": {"kind": "piecewise", "boundaries": [4, 16], "values": [0.01, 0.005, 0.001]},
    "multistep": {"kind": "multistep", "milestones": [6, 18], "gamma": 0.3},
    "exponential": {"kind": "exponential", "gamma": 0.95},
    "inverse_sqrt": {"kind": "inverse_sqrt"},
    "constant": {"kind": "constant"},
    "warmup_stable_decay": {"kind": "warmup_stable_decay", "decay_fraction": 0.3},
}
RESUME_POINTS = [0, 1, 3, W - 1, W, W + 1, 20, TOTAL - 3, TOTAL - 1, TOTAL, TOTAL + 2]
STAGES = {
    "base_lr": 0.01,
    "total_steps": TOTAL,
    "warmup": {"kind": "exponential", "steps": W, "start_lr": 0.0},
    "stages": [
        {"decay": {"kind": "polynomial", "power": 2.0, "end_lr": 0.002}, "steps": 12},
        {"decay": {"kind": "warmup_stable_decay", "decay_fraction": 0.5, "min_lr": 0.001}, "steps": 10},
        {"decay": {"kind": "constant"}},
    ],
}
STAGE_POINTS = [W - 1, W, W + 12 - 1, W + 12, W + 17, W + 22, TOTAL - 1]


def build(data: dict):
    cfg = from_data(ScheduleConfig, data, "schedule")
    return build_schedule(cfg, steps_per_epoch=None, global_batch=32, optimizer_name="adamw")


def run_steps(sched, n: int) -> list[float]:
    """The LR now and after each of ``n`` further steps."""
    out = [sched()]
    for _ in range(n):
        sched.step()
        out.append(sched())
    return out


def check_resume(data: dict, points: list[int], horizon: int = TOTAL + 4) -> None:
    reference = run_steps(build(data).scheduler, horizon)
    for k in points:
        original = build(data).scheduler
        run_steps(original, k)
        saved = json.loads(json.dumps(original.state_dict()))
        restored = build(data).scheduler
        restored.set_state_dict(saved)
        assert restored.state_dict() == original.state_dict()
        # Exact equality, not approx: a resume must reproduce the same floats.
        assert run_steps(restored, horizon - k) == reference[k:], f"resumed at step {k}"


@pytest.mark.parametrize("decay", list(DECAYS))
@pytest.mark.parametrize("warmup", list(WARMUPS))
def test_resume_reproduces_the_sequence_for_every_combination(warmup: str, decay: str) -> None:
    data = {"base_lr": 0.01, "total_steps": TOTAL, "warmup": WARMUPS[warmup], "decay": DECAYS[decay]}
    check_resume(data, RESUME_POINTS)


def test_resume_at_stage_boundaries_of_a_chain() -> None:
    check_resume(STAGES, STAGE_POINTS + RESUME_POINTS)


def test_state_dict_is_plain_json_data_including_a_nested_hook() -> None:
    sched = build({"base_lr": 0.01, "total_steps": TOTAL, "warmup": WARMUPS["custom_scheduler"]}).scheduler
    run_steps(sched, 5)
    state = sched.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["last_epoch"] == 5
    assert state["warmup_hook"]["last_epoch"] == 5


def test_resume_through_a_paddle_optimizer_state_dict() -> None:
    import paddle  # after app (imported above), which guards the zlib-before-paddle trap

    data = {
        "base_lr": 0.1,
        "total_steps": 20,
        "warmup": {"kind": "linear", "steps": 5},
        "decay": {"kind": "cosine"},
    }
    layer = paddle.nn.Linear(2, 1)
    first = build(data).scheduler
    opt = paddle.optimizer.AdamW(learning_rate=first, parameters=layer.parameters())
    for _ in range(7):
        first.step()
    blob = json.dumps(opt.state_dict()["LR_Scheduler"])
    second = build(data).scheduler
    opt2 = paddle.optimizer.AdamW(learning_rate=second, parameters=layer.parameters())
    opt2.set_state_dict({"LR_Scheduler": json.loads(blob)})
    assert opt2.get_lr() == opt.get_lr() == first()
    assert run_steps(second, 13) == run_steps(first, 13)


def test_resume_with_a_changed_batch_continues_the_new_schedule_at_the_saved_step() -> None:
    data = {
        "base_lr": 0.01,
        "total_steps": 20,
        "warmup": {"kind": "linear", "steps": 4},
        "decay": {"kind": "constant"},
        "scaling": {"lr_rule": "linear", "reference_batch": 32},
    }
    cfg = from_data(ScheduleConfig, data, "schedule")
    old = build_schedule(cfg, steps_per_epoch=None, global_batch=32, optimizer_name="sgd").scheduler
    run_steps(old, 10)
    new = build_schedule(cfg, steps_per_epoch=None, global_batch=64, optimizer_name="sgd", reference_batch=64)
    new.scheduler.set_state_dict(json.loads(json.dumps(old.state_dict())))
    assert new.scheduler.last_epoch == 10
    assert new.scheduler() == pytest.approx(0.01)  # reference 64 == batch 64: unscaled


@pytest.mark.parametrize("k", [0, 1, 4, 5, 6, 9, 10, 11, 12, 15, 19, 25])
def test_factor_schedule_resumes_exactly_at_every_point(k: int) -> None:
    data = {
        "base_lr": 0.01,
        "total_steps": 24,
        "warmup": {"kind": "linear", "steps": 4},
        "decay": {"kind": "cosine"},
    }
    changes = [(5, 0.5, 0), (10, 1.0, 3)]
    reference = run_steps(FactorSchedule(build(data).scheduler, changes), 30)
    original = FactorSchedule(build(data).scheduler, changes)
    run_steps(original, k)
    saved = json.loads(json.dumps(original.state_dict()))
    restored = FactorSchedule(build(data).scheduler, changes)
    restored.set_state_dict(saved)
    assert run_steps(restored, 30 - k) == reference[k:]
