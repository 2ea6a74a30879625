"""Every warmup x decay combination checked step by step against the formulas of docs/schedule.md.

The expected values come from formulas written out here, independently of app.schedule.curves, and a
few literal tables pin the numbers of the contract itself.
"""

from __future__ import annotations

import math

import pytest

from app.config.typed import from_data
from app.schedule import ScheduleConfig, build_schedule

BASE, START, MIN_LR, END_LR = 0.01, 0.001, 0.0005, 0.002
TOTAL, W = 40, 8
SPAN = TOTAL - W

DECAYS: dict[str, dict] = {
    "cosine": {"kind": "cosine", "min_lr": MIN_LR},
    "linear": {"kind": "linear", "min_lr": MIN_LR},
    "polynomial": {"kind": "polynomial", "power": 2.0, "end_lr": END_LR},
    "piecewise": {"kind": "piecewise", "boundaries": [5, 20], "values": [0.008, 0.004, 0.001]},
    "multistep": {"kind": "multistep", "milestones": [10, 25], "gamma": 0.5},
    "exponential": {"kind": "exponential", "gamma": 0.9, "min_lr": MIN_LR},
    "inverse_sqrt": {"kind": "inverse_sqrt", "min_lr": MIN_LR},
    "constant": {"kind": "constant"},
    "warmup_stable_decay": {"kind": "warmup_stable_decay", "decay_fraction": 0.25, "min_lr": MIN_LR},
}

WARMUPS: dict[str, dict] = {
    "linear": {"kind": "linear", "steps": W, "start_lr": START},
    "exponential": {"kind": "exponential", "steps": W, "start_lr": START, "power": 3.0},
    "none": {"kind": "none"},
    "custom_function": {
        "kind": "custom",
        "steps": W,
        "start_lr": START,
        "callable": "app.schedule.examples:quadratic_warmup",
    },
    "custom_scheduler": {
        "kind": "custom",
        "steps": W,
        "start_lr": START,
        "callable": "app.schedule.examples:StepwiseWarmup",
    },
}


def expected_warmup(kind: str, t: int) -> float:
    if kind == "linear":
        return START + (BASE - START) * t / W
    if kind == "exponential":
        return START + (BASE - START) * (math.exp(3.0 * t / W) - 1) / (math.exp(3.0) - 1)
    if kind == "custom_function":
        return START + (BASE - START) * (t / W) ** 2
    if kind == "custom_scheduler":
        return START + (BASE - START) * math.floor(4 * t / W) / 4
    raise AssertionError(kind)


def expected_decay(kind: str, s: int, span: int, peak: float, tau: int) -> float:
    """LR at s steps into a decay phase of ``span`` steps that starts at ``peak``."""
    s = min(s, span)
    if kind == "cosine":
        return MIN_LR + (peak - MIN_LR) * 0.5 * (1 + math.cos(math.pi * s / span))
    if kind == "linear":
        return MIN_LR + (peak - MIN_LR) * (1 - s / span)
    if kind == "polynomial":
        return END_LR + (peak - END_LR) * (1 - s / span) ** 2
    if kind == "piecewise":
        return 0.008 if s < 5 else 0.004 if s < 20 else 0.001
    if kind == "multistep":
        return peak * 0.5 ** ((s >= 10) + (s >= 25))
    if kind == "exponential":
        return max(MIN_LR, peak * 0.9**s)
    if kind == "inverse_sqrt":
        return max(MIN_LR, peak * math.sqrt(tau / (tau + s)))
    if kind == "constant":
        return peak
    if kind == "warmup_stable_decay":
        tail = round(0.25 * span)
        stable = span - tail
        return peak if s <= stable else peak + (MIN_LR - peak) * (s - stable) / tail
    raise AssertionError(kind)


def expected_table(warmup: str, decay: str, steps: int) -> list[float]:
    w = 0 if warmup == "none" else W
    tau = max(w, 1)
    return [
        expected_warmup(warmup, t) if t < w else expected_decay(decay, t - w, TOTAL - w, BASE, tau)
        for t in range(steps)
    ]


def build(data: dict, **kwargs):
    cfg = from_data(ScheduleConfig, data, "schedule")
    args = {"steps_per_epoch": None, "global_batch": 32, "optimizer_name": "adamw"} | kwargs
    return build_schedule(cfg, **args)


def stepped(sched, n: int) -> list[float]:
    out = [sched()]
    for _ in range(n - 1):
        sched.step()
        out.append(sched())
    return out


@pytest.mark.parametrize("decay", list(DECAYS))
@pytest.mark.parametrize("warmup", list(WARMUPS))
def test_every_warmup_decay_combination_matches_its_formula(warmup: str, decay: str) -> None:
    built = build({"base_lr": BASE, "total_steps": TOTAL, "warmup": WARMUPS[warmup], "decay": DECAYS[decay]})
    want = expected_table(warmup, decay, TOTAL + 3)  # 3 steps past the end: the LR holds its final value
    assert built.total_steps == TOTAL
    assert built.warmup_steps == (0 if warmup == "none" else W)
    assert built.lr_table() == pytest.approx(want[:TOTAL], rel=1e-12, abs=1e-15)
    assert stepped(built.scheduler, TOTAL + 3) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_contract_table_linear_warmup_cosine() -> None:
    """The issue's contract with literal numbers: W=4, total=12, start 0.1, base 1, min 0.2."""
    built = build(
        {
            "base_lr": 1.0,
            "total_steps": 12,
            "warmup": {"kind": "linear", "steps": 4, "start_lr": 0.1},
            "decay": {"kind": "cosine", "min_lr": 0.2},
        }
    )
    c = [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)]
    table = {
        0: 0.1,
        1: 0.325,
        2: 0.55,
        3: 0.775,
        4: 1.0,
        5: 0.2 + 0.8 * c[1],
        6: 0.2 + 0.8 * c[2],
        8: 0.6,  # halfway through the cosine
        11: 0.2 + 0.8 * c[7],  # the last optimizer step, just above min_lr
        12: 0.2,  # after the final step(): exactly min_lr
        20: 0.2,
    }
    lrs = stepped(built.scheduler, 21)
    for t, value in table.items():
        assert lrs[t] == pytest.approx(value, rel=1e-12), t
    assert lrs[11] == pytest.approx(0.2 + 0.4 * (1 - 0.9238795325112867), rel=1e-12)  # cos(7 pi / 8)


@pytest.mark.parametrize(
    ("decay", "table"),
    [
        ("linear", {0: 1.0, 1: 0.875, 4: 0.5, 8: 0.0}),
        ("polynomial", {0: 1.0, 2: 0.5625, 4: 0.25, 6: 0.0625, 8: 0.0}),
        ("multistep", {0: 1.0, 2: 1.0, 3: 0.1, 5: 0.1, 6: 0.01, 8: 0.01}),
        ("exponential", {0: 1.0, 1: 0.5, 3: 0.125, 8: 0.00390625}),
        ("inverse_sqrt", {0: 1.0, 2: math.sqrt(2 / 4), 6: 0.5}),
        ("warmup_stable_decay", {0: 1.0, 6: 1.0, 7: 0.5, 8: 0.0}),
        ("piecewise", {0: 0.9, 2: 0.9, 3: 0.3, 8: 0.3}),
    ],
)
def test_literal_decay_tables(decay: str, table: dict[int, float]) -> None:
    """No warmup, base 1, total 8: hand-computed values of each decay formula."""
    params = {
        "linear": {},
        "polynomial": {"power": 2.0},
        "multistep": {"milestones": [3, 6], "gamma": 0.1},
        "exponential": {"gamma": 0.5},
        "inverse_sqrt": {"timescale": 2},
        "warmup_stable_decay": {"decay_fraction": 0.25},
        "piecewise": {"boundaries": [3], "values": [0.9, 0.3]},
    }[decay]
    built = build(
        {"base_lr": 1.0, "total_steps": 8, "warmup": {"kind": "none"}, "decay": {"kind": decay, **params}}
    )
    lrs = stepped(built.scheduler, 9)
    for t, value in table.items():
        assert lrs[t] == pytest.approx(value, rel=1e-12, abs=1e-15), t


def test_exponential_warmup_curve_literal() -> None:
    """lr(t) = start + (base - start) (e^(p t/W) - 1)/(e^p - 1) with p = ln 3, W = 2."""
    built = build(
        {
            "base_lr": 1.0,
            "total_steps": 10,
            "warmup": {"kind": "exponential", "steps": 2, "start_lr": 0.0, "power": math.log(3.0)},
            "decay": {"kind": "constant"},
        }
    )
    # e^(ln3 * 1/2) = sqrt 3, so lr(1) = (sqrt 3 - 1) / 2
    assert stepped(built.scheduler, 3) == pytest.approx([0.0, (math.sqrt(3) - 1) / 2, 1.0], rel=1e-12)


def test_stage_chain_exponential_warmup_polynomial_then_plateau() -> None:
    data = {
        "base_lr": 1.0,
        "total_steps": 30,
        "warmup": {"kind": "exponential", "steps": 5, "start_lr": 0.0, "power": 2.0},
        "stages": [
            {"decay": {"kind": "polynomial", "power": 2.0, "end_lr": 0.1}, "steps": 10},
            {"decay": {"kind": "cosine", "min_lr": 0.01}, "steps": 8},
            {"decay": {"kind": "constant"}},
        ],
    }
    built = build(data)
    want = [(math.exp(2 * t / 5) - 1) / (math.exp(2) - 1) for t in range(5)]
    want += [0.1 + 0.9 * (1 - s / 10) ** 2 for s in range(10)]
    want += [0.01 + (0.1 - 0.01) * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)]
    want += [0.01] * 7
    assert built.lr_table() == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert [(p.name, p.start, p.end) for p in built.phases] == [
        ("warmup (exponential)", 0, 5),
        ("stage 1 (polynomial)", 5, 15),
        ("stage 2 (cosine)", 15, 23),
        ("stage 3 (constant)", 23, 30),
    ]


def test_fixed_length_stages_that_stop_early_hold_the_last_value() -> None:
    built = build(
        {
            "base_lr": 1.0,
            "total_steps": 12,
            "warmup": {"kind": "none"},
            "stages": [{"decay": {"kind": "linear", "min_lr": 0.2}, "steps": 4}],
        }
    )
    assert built.lr_table() == pytest.approx([1.0, 0.8, 0.6, 0.4] + [0.2] * 8, rel=1e-12)
    assert built.phases[-1].name == "hold"


def test_epochs_are_converted_once_from_optimizer_steps_per_epoch() -> None:
    built = build(
        {
            "base_lr": 1.0,
            "epochs": 2.5,
            "warmup": {"kind": "linear", "epochs": 0.5},
            "decay": {"kind": "constant"},
        },
        steps_per_epoch=7,
    )
    assert (built.total_steps, built.warmup_steps) == (18, 4)  # ceil(17.5), ceil(3.5)
    assert built.lr_table()[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert any("18 steps" in n for n in built.notes)


def test_lr_table_does_not_advance_the_live_scheduler() -> None:
    built = build({"base_lr": 1.0, "total_steps": 10, "warmup": {"kind": "linear", "steps": 2}})
    built.scheduler.step()
    built.lr_table()
    assert built.scheduler.last_epoch == 1
    assert built.scheduler() == pytest.approx(0.5)


def test_a_paddle_optimizer_uses_the_scheduled_lr_at_every_step() -> None:
    import paddle  # after app (imported above), which guards the zlib-before-paddle trap

    built = build(
        {
            "base_lr": 0.1,
            "total_steps": 10,
            "warmup": {"kind": "linear", "steps": 4},
            "decay": {"kind": "linear"},
        }
    )
    layer = paddle.nn.Linear(2, 1)
    opt = paddle.optimizer.SGD(learning_rate=built.scheduler, parameters=layer.parameters())
    seen = []
    for _ in range(10):
        seen.append(opt.get_lr())
        layer(paddle.ones([1, 2])).sum().backward()
        opt.step()
        opt.clear_grad()
        built.scheduler.step()
    assert seen == pytest.approx(built.lr_table(), rel=1e-12)
    assert seen[:5] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
