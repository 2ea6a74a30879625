"""Auto policies (warmup auto, scaling rules, log rule), lints, config errors and the LR factor wrapper."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest

from app.config import load_config
from app.config.typed import from_data
from app.errors import ConfigError
from app.schedule import FactorSchedule, ScheduleConfig, build_schedule, factor_at, lint_schedule
from app.schedule.config import DecayKind, WarmupKind


def build(data: dict, **kwargs):
    cfg = from_data(ScheduleConfig, data, "schedule")
    args = {"steps_per_epoch": None, "global_batch": 32, "optimizer_name": "sgd"} | kwargs
    return build_schedule(cfg, **args)


def run_steps(sched, n: int) -> list[float]:
    out = [sched()]
    for _ in range(n - 1):
        sched.step()
        out.append(sched())
    return out


# ---- auto policies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "expected"),
    [(1000, 60), (5000, 300), (100, 10), (50, 5), (20, 2), (9, 0), (200_000, 2000), (30_000, 1800)],
)
def test_auto_warmup_is_six_percent_clamped(total: int, expected: int) -> None:
    built = build({"total_steps": total, "warmup": {"steps": "auto"}})
    assert built.warmup_steps == expected
    # never more than 10 % of the run
    assert built.warmup_steps <= total // 10
    assert f"warmup.steps=auto -> {expected}" in built.notes[0]


def test_auto_warmup_note_text() -> None:
    assert build({"total_steps": 1000, "warmup": {"steps": "auto"}}).notes == [
        "warmup.steps=auto -> 60 (6% of 1000)"
    ]


@pytest.mark.parametrize(
    ("rule", "batch", "expected"),
    [
        ("linear", 128, 0.004),
        ("linear", 16, 0.0005),
        ("sqrt", 128, 0.002),
        ("sqrt", 8, 0.0005),
        ("none", 128, 0.001),
    ],
)
def test_lr_scaling_rules(rule: str, batch: int, expected: float) -> None:
    built = build(
        {"base_lr": 0.001, "total_steps": 100, "scaling": {"lr_rule": rule, "reference_batch": 32}},
        global_batch=batch,
    )
    assert built.base_lr == pytest.approx(expected, rel=1e-12)
    assert max(built.lr_table()) == pytest.approx(expected, rel=1e-12)
    assert bool(built.notes) == (rule != "none")


def test_reference_batch_argument_overrides_the_config() -> None:
    data = {"base_lr": 0.001, "total_steps": 100, "scaling": {"lr_rule": "linear", "reference_batch": 32}}
    assert build(data, global_batch=64, reference_batch=16).base_lr == pytest.approx(0.004)


@pytest.mark.parametrize(
    ("batch", "expected"), [(32, 100), (16, 100), (64, round(100 * (1 + math.log(2)))), (256, 308)]
)
def test_log_rule_lengthens_warmup_as_batch_grows(batch: int, expected: int) -> None:
    built = build(
        {
            "total_steps": 5000,
            "warmup": {"steps": 100},
            "scaling": {"warmup_rule": "log", "reference_batch": 32},
        },
        global_batch=batch,
    )
    assert built.warmup_steps == expected
    assert any("warmup_rule=log" in n for n in built.notes) == (batch > 32)


# ---- lints ---------------------------------------------------------------------------------------------


def lints(total: int, warmup: int, optimizer: str = "sgd", **warm: object) -> list[str]:
    cfg = from_data(ScheduleConfig, {"total_steps": total, "warmup": {"steps": warmup, **warm}}, "schedule")
    return lint_schedule(cfg, total_steps=total, warmup_steps=warmup, optimizer_name=optimizer)


def test_no_lints_for_a_sensible_schedule() -> None:
    assert lints(1000, 60, "adamw", start_lr=1e-5) == []


def test_lint_warmup_over_ten_percent() -> None:
    (line,) = lints(10_000, 1500)
    assert "1500 of 10000 steps (15.0%" in line
    assert lints(10_000, 1000) == []  # exactly 10 % is fine


def test_lint_long_warmup_in_a_short_run() -> None:
    found = lints(1900, 501)
    assert len(found) == 2  # also over 10 %
    assert any("501 steps in a run of only 1900" in line for line in found)
    assert not any("run of only" in line for line in lints(1900, 150))
    assert not any("run of only" in line for line in lints(20_000, 1000))


@pytest.mark.parametrize(
    ("optimizer", "start", "warns"),
    [("adam", 0.0, True), ("adamw", 0.0, True), ("sgd", 0.0, False), ("adamw", 1e-6, False)],
)
def test_lint_zero_start_lr_with_adaptive_optimizer(optimizer: str, start: float, warns: bool) -> None:
    found = lints(1000, 50, optimizer, start_lr=start)
    assert any("start_lr is 0" in line for line in found) == warns


def test_lints_are_returned_by_build() -> None:
    built = build({"total_steps": 1000, "warmup": {"steps": 600}}, optimizer_name="adamw")
    assert len(built.warnings) == 3
    assert "600 of 1000 steps (60.0%" in built.warnings[0]


# ---- config errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (
            {"total_steps": 3000, "warmup": {"steps": 5000}},
            {},
            "schedule.warmup.steps (5000) exceeds schedule.total_steps (3000)",
        ),
        (
            {"total_steps": 3000, "warmup": {"steps": 3000}},
            {},
            "schedule.warmup.steps (3000) equals schedule.total_steps (3000)",
        ),
        (
            {"epochs": 2, "warmup": {"epochs": 3}},
            {"steps_per_epoch": 10},
            "schedule.warmup.epochs (3 = 30 steps) exceeds schedule.epochs (2 = 20 steps)",
        ),
        (
            {
                "total_steps": 150,
                "warmup": {"steps": 100},
                "scaling": {"warmup_rule": "log", "reference_batch": 8},
            },
            {"global_batch": 64},
            "schedule.warmup.steps (100, 308 after scaling.warmup_rule=log) exceeds schedule.total_steps (150)",
        ),
        (
            {"epochs": 3},
            {},
            "schedule.epochs (3) is given in epochs but the number of optimizer steps per epoch is unknown",
        ),
        ({}, {}, "schedule.total_steps or schedule.epochs: one is required"),
        (
            {"total_steps": 10, "scaling": {"lr_rule": "sqrt"}},
            {},
            "schedule.scaling.reference_batch: required when",
        ),
        (
            {
                "total_steps": 10,
                "stages": [{"decay": {"kind": "linear"}, "steps": 8}, {"decay": {"kind": "constant"}}],
                "warmup": {"steps": 2},
            },
            {},
            "schedule.stages: stage lengths (8 = 8 steps) leave no room in the 8 steps after warmup",
        ),
        (
            {"total_steps": 10, "warmup": {"kind": "custom", "steps": 2, "callable": "no_such_module_xyz:f"}},
            {},
            "schedule.warmup.callable ('no_such_module_xyz:f'): cannot import module",
        ),
        (
            {"total_steps": 10, "warmup": {"kind": "custom", "steps": 2, "callable": "math:nope"}},
            {},
            "module 'math' has no attribute 'nope'",
        ),
    ],
)
def test_build_errors_name_fields_and_values(data: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(data, **kwargs)
    assert message in info.value.line()
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["schedule.decay.kind=cosin"], "schedule.decay.kind: 'cosin' is not one of"),
        (
            [
                "schedule.decay.kind=piecewise",
                "schedule.decay.boundaries=[10]",
                "schedule.decay.values=[0.1]",
            ],
            "schedule.decay.values: piecewise needs one more value than boundaries",
        ),
        (
            ["schedule.decay.kind=multistep", "schedule.decay.milestones=[10, 5]"],
            "schedule.decay.milestones: must be positive and strictly increasing",
        ),
        (
            ["schedule.warmup.kind=custom"],
            "schedule.warmup.callable: required when schedule.warmup.kind is 'custom'",
        ),
        (
            ["schedule.warmup.steps=10", "schedule.warmup.epochs=1"],
            "schedule.warmup.steps (10) and schedule.warmup.epochs (1.0): set one",
        ),
        (["schedule.warmup.steps=sometimes"], "schedule.warmup.steps"),
        (
            ["schedule.stages=[{steps: null}, {steps: 5}]"],
            "schedule.stages[0].steps: only the last stage may run to the end",
        ),
        (
            ["schedule.decay.decay_fraction=1.5"],
            "schedule.decay.decay_fraction: must be within [0, 1], got 1.5",
        ),
    ],
)
def test_config_validation_names_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["schedule.total_steps=100", *overrides], env={})
    assert message in info.value.line()


# ---- the LR factor wrapper -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "expected"),
    [(0, 1.0), (4, 1.0), (5, 0.0), (6, 0.25), (8, 0.75), (9, 1.0), (12, 1.0), (15, 0.2), (30, 0.2)],
)
def test_factor_at_ramps_from_zero_after_each_change(t: int, expected: float) -> None:
    assert factor_at([(5, 1.0, 4), (15, 0.2, 0)], t) == pytest.approx(expected)


def test_factor_schedule_multiplies_the_inner_lr() -> None:
    inner = build({"base_lr": 1.0, "total_steps": 20, "warmup": {"steps": 4}, "decay": {"kind": "linear"}})
    wrapped = FactorSchedule(inner.fresh(), [(10, 0.5, 2), (2, 2.0, 0)])
    base = inner.lr_table()
    factors = [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0.25] + [0.5] * 8
    assert run_steps(wrapped, 20) == pytest.approx(
        [b * f for b, f in zip(base, factors, strict=True)], rel=1e-12
    )
    assert wrapped.inner.last_epoch == 19


def test_factor_schedule_rejects_negative_values() -> None:
    inner = build({"total_steps": 20}).fresh()
    with pytest.raises(ValueError, match="must be >= 0"):
        FactorSchedule(inner, [(3, -1.0, 0)])


def test_docs_describe_every_warmup_and_decay_kind() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "schedule.md").read_text()
    for kind in typing.get_args(WarmupKind) + typing.get_args(DecayKind):
        assert f"| `{kind}`" in docs, kind
