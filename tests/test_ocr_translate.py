"""PaddleOCR ``Global`` / ``Optimizer`` keys in an ocr_rec config: the mapping table, conflicts, errors,
and the LR per step against PaddleOCR's own scheduler composition (Paddle's ``LinearWarmup`` around
``CosineAnnealingDecay`` / ``PiecewiseDecay``, as ppocr/optimizer/learning_rate.py builds it)."""

from __future__ import annotations

import logging
import math

import paddle
import pytest

from app.config import load_config
from app.config.typed import to_data
from app.errors import ConfigError
from app.schedule import build_schedule
from app.tasks.ocr.translate import translate

TASK = {"kind": "ocr_rec", "options": {"data_dir": "data/ocr", "builtin_dict": "en_dict.txt"}}


def resolved(raw: dict, tmp_path) -> dict:
    """The validated config (as plain data) for a raw dict with the ocr task."""
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"task": TASK, **raw}))
    return to_data(load_config(path, env={}))


# (PaddleOCR snippet, our dotted key, expected value): the table of docs/ocr.md.
TABLE = [
    ({"Global": {"epoch_num": 12}}, "schedule.epochs", 12.0),
    ({"Global": {"print_batch_step": 5}}, "train.log_every_steps", 5),
    ({"Global": {"eval_batch_step": [0, 200]}}, "train.eval_every_steps", 200),
    ({"Global": {"eval_batch_step": 50}}, "train.eval_every_steps", 50),
    ({"Global": {"max_text_length": 40}}, "task.options.max_text_length", 40),
    ({"Global": {"use_space_char": True}}, "task.options.use_space_char", True),
    ({"Optimizer": {"name": "Adam"}}, "optim.name", "adam"),
    ({"Optimizer": {"name": "AdamW", "weight_decay": 0.05}}, "optim.weight_decay", 0.05),
    ({"Optimizer": {"name": "Momentum", "momentum": 0.8}}, "optim.momentum", 0.8),
    ({"Optimizer": {"name": "SGD"}}, "optim.name", "sgd"),
    ({"Optimizer": {"beta1": 0.8, "beta2": 0.99}}, "optim.beta2", 0.99),
    ({"Optimizer": {"epsilon": 1.0e-6}}, "optim.epsilon", 1.0e-6),
    ({"Optimizer": {"clip_norm": 10}}, "optim.grad_clip_norm", 10.0),
    ({"Optimizer": {"clip_norm_global": 5}}, "optim.grad_clip_norm", 5.0),
    ({"Optimizer": {"regularizer": {"name": "L2", "factor": 3.0e-5}}}, "optim.weight_decay", 3.0e-5),
    ({"Optimizer": {"lr": {"name": "Cosine", "learning_rate": 0.001}}}, "schedule.base_lr", 0.001),
    ({"Optimizer": {"lr": {"name": "Cosine", "learning_rate": 0.001}}}, "schedule.decay.kind", "cosine"),
    ({"Optimizer": {"lr": {"name": "Cosine", "learning_rate": 0.001}}}, "schedule.decay.min_lr", 0.0),
    ({"Optimizer": {"lr": {"name": "Cosine", "learning_rate": 0.1}}}, "schedule.warmup.kind", "none"),
    (
        {"Optimizer": {"lr": {"name": "Cosine", "learning_rate": 0.1, "warmup_epoch": 2}}},
        "schedule.warmup",
        {
            "kind": "linear",
            "steps": None,
            "epochs": 2.0,
            "epochs_rounding": "nearest_even",
            "start_lr": 0.0,
            "start_lr_lint": False,  # PaddleOCR's own warmup from 0: not the hand-written lint's case
            "power": 5.0,
            "callable": None,
        },
    ),
    (
        {"Optimizer": {"lr": {"name": "Linear", "learning_rate": 0.1, "end_lr": 0.01}}},
        "schedule.decay.kind",
        "polynomial",
    ),
    (
        {"Optimizer": {"lr": {"name": "Linear", "learning_rate": 0.1, "end_lr": 0.01}}},
        "schedule.decay.end_lr",
        0.01,
    ),
    (
        {"Optimizer": {"lr": {"name": "Linear", "learning_rate": 0.1, "power": 2}}},
        "schedule.decay.power",
        2.0,
    ),
    ({"Optimizer": {"lr": {"name": "Const", "learning_rate": 0.1}}}, "schedule.decay.kind", "constant"),
    ({"Optimizer": {"lr": {"learning_rate": 0.1}}}, "schedule.decay.kind", "constant"),
    (
        {"Optimizer": {"lr": {"name": "Piecewise", "decay_epochs": [3, 5], "values": [0.1, 0.01, 0.001]}}},
        "schedule.base_lr",
        0.1,
    ),
]


@pytest.mark.parametrize(("raw", "key", "value"), TABLE, ids=[f"{r}->{k}" for r, k, _ in TABLE])
def test_mapping_table(raw: dict, key: str, value: object, tmp_path) -> None:
    if "epoch_num" not in raw.get("Global", {}):
        raw = {**raw, "schedule": {"total_steps": 100}}
    node = resolved(raw, tmp_path)
    for part in key.split("."):
        node = node[part]
    assert node == value


def test_piecewise_becomes_stages_of_epochs() -> None:
    raw = {"Optimizer": {"lr": {"name": "Piecewise", "decay_epochs": [3, 5], "values": [0.1, 0.01, 0.001]}}}
    out = translate({"task": TASK, "schedule": {"epochs": 8}, **raw})
    assert out["schedule"]["stages"] == [
        {"decay": {"kind": "piecewise", "boundaries": [], "values": [0.1]}, "epochs": 3.0},
        {"decay": {"kind": "piecewise", "boundaries": [], "values": [0.01]}, "epochs": 2.0},
        {"decay": {"kind": "piecewise", "boundaries": [], "values": [0.001]}},
    ]
    assert "Optimizer" not in out and "decay" not in out["schedule"]


def test_our_sections_win_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    raw = {
        "Global": {"epoch_num": 50, "use_gpu": True},
        "Optimizer": {"name": "Adam", "lr": {"name": "Cosine", "learning_rate": 0.01, "warmup_epoch": 1}},
        "schedule": {"total_steps": 300, "base_lr": 0.0005, "warmup": {"steps": 10}},
    }
    source = {"task": TASK, **raw}
    with caplog.at_level(logging.WARNING, logger="app.tasks.ocr.translate"):
        out = translate(source)
    assert out["schedule"] == {
        "total_steps": 300,
        "base_lr": 0.0005,
        "warmup": {"steps": 10},
        "decay": {"kind": "cosine", "min_lr": 0.0, "period": "run"},
    }
    assert (
        "Global" in source and "schedule" in source and "decay" not in source["schedule"]
    )  # input untouched
    messages = [r.getMessage() for r in caplog.records]
    assert "Global.epoch_num ignored: schedule.total_steps is set in our own section and wins" in messages
    assert (
        "Optimizer.lr.learning_rate ignored: schedule.base_lr is set in our own section and wins" in messages
    )
    assert "Optimizer.lr.warmup_epoch ignored: schedule.warmup is set in our own section and wins" in messages
    assert "Global keys with no meaning here are ignored: use_gpu" in messages


def test_set_override_beats_paddleocr_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "task: {kind: ocr_rec, options: {data_dir: d, builtin_dict: en_dict.txt}}\n"
        "Global: {epoch_num: 4}\nOptimizer: {name: Adam, lr: {name: Cosine, learning_rate: 0.01}}\n"
    )
    cfg = load_config(path, ["schedule.base_lr=0.002"], env={"WARMSTART_TOTAL_STEPS": "77"})
    assert (cfg.schedule.base_lr, cfg.schedule.total_steps, cfg.schedule.epochs) == (0.002, 77, None)
    assert cfg.optim.name == "adam" and cfg.schedule.decay.kind == "cosine"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"Optimizer": {"lr": {"name": "OneCycle", "max_lr": 0.1}}},
            "Optimizer.lr.name: 'OneCycle' is not mapped",
        ),
        (
            {"Optimizer": {"lr": {"name": "Cosine", "learning_rate": 0.1, "eta_min": 0}}},
            "Optimizer.lr.eta_min: not a",
        ),
        (
            {"Optimizer": {"nmae": "Adam"}},
            "Optimizer.nmae: not a supported PaddleOCR key here; did you mean 'name'?",
        ),
        ({"Optimizer": {"name": "Lamb"}}, "Optimizer.name: 'Lamb' is not one of Adam, AdamW, Momentum, SGD"),
        (
            {"Optimizer": {"regularizer": {"name": "L1", "factor": 1}}},
            "Optimizer.regularizer: only {name: L2",
        ),
        ({"Optimizer": {"lr": {"name": "Cosine"}}}, "Optimizer.lr.learning_rate: required for name Cosine"),
        (
            {"Architecture": {"model_type": "rec", "algorithm": "SVTR"}},
            "Architecture.algorithm: 'SVTR' is not a supported PaddleOCR recognition setup (supported: SVTR_LCNet",
        ),
        ({"Train": {"dataset": {"name": "LMDBDataSet"}}}, "Train.dataset.name: 'LMDBDataSet' is not one of"),
        ({"Global": {"eval_batch_step": [0, 1, 2]}}, "Global.eval_batch_step: expected [start, every]"),
    ],
)
def test_errors_name_the_paddleocr_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        translate({"task": TASK, **raw})
    assert info.value.message.startswith(message)


def test_other_tasks_are_not_translated(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: {kind: digits}\nOptimizer: {name: Adam}\nschedule: {total_steps: 5}\n")
    with pytest.raises(ConfigError, match="Optimizer"):
        load_config(path, env={})


# --- LR per step against PaddleOCR's composition -----------------------------------------------------

SPE, EPOCHS, LR = 7, 6, 0.004


def ours(raw_optimizer: dict) -> list[float]:
    data = translate({"task": TASK, "Global": {"epoch_num": EPOCHS}, "Optimizer": raw_optimizer})
    from app.config.typed import from_data
    from app.schedule import ScheduleConfig

    cfg = from_data(ScheduleConfig, data["schedule"], "schedule")
    built = build_schedule(cfg, steps_per_epoch=SPE, global_batch=8, optimizer_name="adam")
    assert built.total_steps == SPE * EPOCHS
    return built.lr_table()


def paddleocr(
    inner: paddle.optimizer.lr.LRScheduler | float, warmup_epoch: float, end_lr: float
) -> list[float]:
    """ppocr's wrapping: LinearWarmup(inner, round(warmup_epoch * spe), start 0.0, end lr) when > 0."""
    steps = round(warmup_epoch * SPE)
    sched = paddle.optimizer.lr.LinearWarmup(inner, steps, 0.0, end_lr) if steps > 0 else inner
    if not isinstance(sched, paddle.optimizer.lr.LRScheduler):
        return [float(sched)] * (SPE * EPOCHS)
    out = []
    for _ in range(SPE * EPOCHS):
        out.append(float(sched()))
        sched.step()
    return out


@pytest.mark.parametrize("warmup_epoch", [2, 0.5, 1.5, 0.25, 0.07])
def test_cosine_with_warmup_matches_paddleocr_exactly(warmup_epoch: float) -> None:
    """LinearWarmup(CosineAnnealingDecay(LR, T_max = the whole run), round(warmup_epoch * spe)): the
    warmup rounds to nearest with ties to even (0.5 * 7 = 3.5 -> 4, 1.5 * 7 = 10.5 -> 10, 0.07 * 7 -> 0)
    and the cosine, counted from the end of warmup, has the whole run as its period (ends above 0)."""
    raw = {"name": "Adam", "lr": {"name": "Cosine", "learning_rate": LR, "warmup_epoch": warmup_epoch}}
    got = ours(raw)
    ref = paddleocr(paddle.optimizer.lr.CosineAnnealingDecay(LR, T_max=SPE * EPOCHS), warmup_epoch, LR)
    T, W = SPE * EPOCHS, round(warmup_epoch * SPE)
    tol = 1e-13 if W else 1e-6  # without warmup Paddle's cosine uses its recursive (non-closed) form
    assert got == pytest.approx(ref, rel=tol, abs=1e-15)
    assert got[-1] == pytest.approx(LR / 2 * (1 + math.cos(math.pi * (T - 1 - W) / T)), rel=1e-12)
    assert got[-1] > 0


def test_fractional_warmup_rounds_like_python_round() -> None:
    lengths = {}
    for warmup_epoch in (0.5, 1.5, 0.3):
        raw = {"lr": {"name": "Cosine", "learning_rate": LR, "warmup_epoch": warmup_epoch}}
        got = ours(raw)
        lengths[warmup_epoch] = next(t for t, v in enumerate(got) if v == pytest.approx(LR, rel=1e-12))
    assert lengths == {0.5: 4, 1.5: 10, 0.3: 2}


def test_linear_with_warmup_matches_paddleocr_exactly() -> None:
    raw = {"lr": {"name": "Linear", "learning_rate": LR, "end_lr": 0.0004, "power": 2, "warmup_epoch": 1.5}}
    got = ours(raw)
    inner = paddle.optimizer.lr.PolynomialDecay(LR, SPE * EPOCHS, end_lr=0.0004, power=2.0)
    ref = paddleocr(inner, 1.5, LR)
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-15)
    assert got[-1] > 0.0004


def test_cosine_without_warmup_matches_paddleocr_exactly() -> None:
    got = ours({"lr": {"name": "Cosine", "learning_rate": LR}})
    ref = paddleocr(paddle.optimizer.lr.CosineAnnealingDecay(LR, T_max=SPE * EPOCHS), 0, LR)
    assert got == pytest.approx(ref, rel=1e-6, abs=1e-12)


def test_piecewise_with_warmup_matches_paddleocr_exactly() -> None:
    values = [LR, LR / 10, LR / 100]
    got = ours({"lr": {"name": "Piecewise", "decay_epochs": [2, 3], "values": values, "warmup_epoch": 1}})
    ref = paddleocr(paddle.optimizer.lr.PiecewiseDecay([2 * SPE, 3 * SPE], values), 1, values[0])
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-15)
    assert got[SPE] == LR and got[3 * SPE] == LR / 10 and got[-1] == LR / 100


def test_const_with_warmup_matches_paddleocr_exactly() -> None:
    got = ours({"lr": {"name": "Const", "learning_rate": LR, "warmup_epoch": 1}})
    ref = paddleocr(LR, 1, LR)
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-15)
    assert got[: SPE + 1] == pytest.approx([LR * t / SPE for t in range(SPE + 1)])


def test_linear_without_warmup_matches_paddleocr_exactly() -> None:
    got = ours({"lr": {"name": "Linear", "learning_rate": LR, "end_lr": 0.0004}})
    ref = paddleocr(paddle.optimizer.lr.PolynomialDecay(LR, SPE * EPOCHS, end_lr=0.0004), 0, LR)
    assert got == pytest.approx(ref, rel=1e-9)


def test_multistep_with_warmup_matches_paddleocr_exactly() -> None:
    raw = {
        "lr": {
            "name": "MultiStepDecay",
            "learning_rate": LR,
            "milestones": [2, 4],
            "gamma": 0.5,
            "warmup_epoch": 1,
        }
    }
    got = ours(raw)
    ref = paddleocr(paddle.optimizer.lr.MultiStepDecay(LR, [2 * SPE, 4 * SPE], gamma=0.5), 1, LR)
    assert got == ref


def test_step_with_warmup_matches_paddleocr_exactly() -> None:
    got = ours(
        {"lr": {"name": "Step", "learning_rate": LR, "step_size": 2, "gamma": 0.3, "warmup_epoch": 0.5}}
    )
    ref = paddleocr(paddle.optimizer.lr.StepDecay(LR, 2 * SPE, gamma=0.3), 0.5, LR)
    assert got == ref
    assert len(set(got[SPE:])) == 3  # LR, LR*0.3, LR*0.09 within the 6 epochs (counted after warmup)


def test_step_needs_the_run_length() -> None:
    data = {"task": TASK, "Optimizer": {"lr": {"name": "Step", "learning_rate": LR, "step_size": 2}}}
    with pytest.raises(ConfigError, match="Step needs step_size > 0 and Global.epoch_num"):
        translate(data)
