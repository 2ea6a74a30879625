"""PaddleNLP TrainingArguments names map onto our config keys (the table in docs/nlp.md), without overriding."""

from __future__ import annotations

import pytest

from app.config import load_config
from app.errors import ConfigError
from app.tasks.nlp.translate import translate
from tests.train_helpers import ROOT

NLP = {"task": {"kind": "nlp_seq_cls", "options": {"model_dir": "m", "train_file": "t", "eval_file": "e"}}}


def _get(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data[part]
    return data


LINEAR_DEFAULT = {"schedule.decay.kind": "linear", "schedule.decay.min_lr": 0.0}

# (training_args, {our dotted key: expected value}) — the mapping table of docs/nlp.md.
TABLE = [
    ({"learning_rate": 5e-5}, {"schedule.base_lr": 5e-5}),
    (
        {"warmup_steps": 10, "max_steps": 100},
        {"schedule.warmup.steps": 10, "schedule.total_steps": 100, "schedule.warmup.start_lr_lint": False},
    ),
    (
        {"warmup_ratio": 0.06, "max_steps": 250},
        {"schedule.warmup.steps": 15, "schedule.total_steps": 250, "schedule.warmup.start_lr_lint": False},
    ),
    (
        {"warmup_ratio": 0.1, "num_train_epochs": 3},
        {
            "schedule.warmup.epochs": 0.30000000000000004,
            "schedule.epochs": 3,
            "schedule.warmup.start_lr_lint": False,
        },
    ),  # fmt: skip
    (
        {"warmup_steps": 7, "warmup_ratio": 0.5, "max_steps": 100},
        {"schedule.warmup.steps": 7, "schedule.total_steps": 100, "schedule.warmup.start_lr_lint": False},
    ),
    ({"per_device_train_batch_size": 16}, {"train.batch_size": 16}),
    ({"gradient_accumulation_steps": 4}, {"train.grad_accum_steps": 4}),
    ({"max_steps": 500, "num_train_epochs": 3}, {"schedule.total_steps": 500}),
    ({"num_train_epochs": 2.5}, {"schedule.epochs": 2.5}),
    ({"save_steps": 200}, {"checkpoint.every_steps": 200}),
    ({"save_total_limit": 2}, {"checkpoint.keep_last": 2}),
    ({"lr_scheduler_type": "linear"}, {"schedule.decay.kind": "linear", "schedule.decay.min_lr": 0.0}),
    ({"lr_scheduler_type": "cosine"}, {"schedule.decay.kind": "cosine", "schedule.decay.min_lr": 0.0}),
    ({"lr_scheduler_type": "constant"}, {"schedule.decay.kind": "constant"}),
    ({"lr_scheduler_type": "constant_with_warmup"}, {"schedule.decay.kind": "constant"}),
    (
        {"lr_scheduler_type": "polynomial"},
        {"schedule.decay.kind": "polynomial", "schedule.decay.end_lr": 1e-7, "schedule.decay.power": 1.0},
    ),  # fmt: skip
    (
        {"lr_scheduler_type": "polynomial", "lr_end": 1e-5, "power": 2.0},
        {"schedule.decay.kind": "polynomial", "schedule.decay.end_lr": 1e-5, "schedule.decay.power": 2.0},
    ),  # fmt: skip
    ({"weight_decay": 0.01}, {"optim.weight_decay": 0.01}),
    ({"max_grad_norm": 1.0}, {"optim.grad_clip_norm": 1.0}),
    ({"max_grad_norm": 0}, {"optim.grad_clip_norm": None}),
    (
        {"adam_beta1": 0.8, "adam_beta2": 0.98, "adam_epsilon": 1e-6},
        {"optim.beta1": 0.8, "optim.beta2": 0.98, "optim.epsilon": 1e-6},
    ),  # fmt: skip
    ({"seed": 3}, {"run.seed": 3}),
    ({"output_dir": "out/x"}, {"run.dir": "out/x"}),
    ({"eval_steps": 25}, {"train.eval_every_steps": 25}),
    ({"logging_steps": 5}, {"train.log_every_steps": 5}),
    ({"metric_for_best_model": "eval_accuracy"}, {"train.metric": "accuracy", "train.metric_mode": "max"}),
    ({"metric_for_best_model": "f1"}, {"train.metric": "f1", "train.metric_mode": "max"}),
    ({"metric_for_best_model": "loss"}, {"train.metric": "eval_loss", "train.metric_mode": "min"}),
    ({"metric_for_best_model": "eval_loss"}, {"train.metric": "eval_loss", "train.metric_mode": "min"}),
    (
        {"metric_for_best_model": "accuracy", "greater_is_better": False},
        {"train.metric": "accuracy", "train.metric_mode": "min"},
    ),  # fmt: skip
    (
        {"load_best_model_at_end": True},
        {"checkpoint.tag_best": "best", "train.metric": "eval_loss", "train.metric_mode": "min"},
    ),  # fmt: skip
    (
        {"load_best_model_at_end": True, "metric_for_best_model": "eval_macro_f1"},
        {"checkpoint.tag_best": "best", "train.metric": "macro_f1", "train.metric_mode": "max"},
    ),  # fmt: skip
    ({"load_best_model_at_end": False}, {}),
    ({"fp16": True}, {"train.amp": "fp16"}),
    ({"bf16": True}, {"train.amp": "bf16"}),
    ({"fp16": True, "fp16_opt_level": "O1"}, {"train.amp": "fp16"}),
    ({"fp16": False, "bf16": False}, {"train.amp": "off"}),
    ({"fp16": False}, {"train.amp": "off"}),
    ({"fp16_opt_level": "O1"}, {}),
    ({"per_device_eval_batch_size": 4}, {"task.options.eval_batch_size": 4}),
    ({"max_seq_length": 64}, {"task.options.max_seq_len": 64}),
    ({"run_name": "exp1"}, {"run.name": "exp1"}),
    ({"evaluation_strategy": "no"}, {"train.eval_every_steps": None}),
    ({"evaluation_strategy": "no", "eval_steps": 10}, {"train.eval_every_steps": None}),
    ({"evaluation_strategy": "steps", "eval_steps": 20}, {"train.eval_every_steps": 20}),
    (
        {"evaluation_strategy": "steps", "logging_steps": 7},
        {"train.eval_every_steps": 7, "train.log_every_steps": 7},
    ),
    ({"evaluation_strategy": "steps"}, {"train.eval_every_steps": 500}),
    ({"save_strategy": "no"}, {"checkpoint.every_steps": None}),
    (
        {"save_strategy": False, "evaluation_strategy": False},
        {"checkpoint.every_steps": None, "train.eval_every_steps": None},
    ),
    ({"save_strategy": "no", "save_steps": 30}, {"checkpoint.every_steps": None}),
    ({"save_strategy": "steps"}, {"checkpoint.every_steps": 500}),
    ({"save_strategy": "steps", "save_steps": 40}, {"checkpoint.every_steps": 40}),
    ({"save_steps": 0}, {"checkpoint.every_steps": None}),
    ({"logging_strategy": "steps", "logging_steps": 3}, {"train.log_every_steps": 3}),
    # rounded down, as PaddleNLP's Trainer.create_scheduler (int), not TrainingArguments.get_warmup_steps (ceil)
    (
        {"warmup_ratio": 0.1, "max_steps": 95},
        {"schedule.warmup.steps": 9, "schedule.total_steps": 95, "schedule.warmup.start_lr_lint": False},
    ),
    (
        {"warmup_ratio": 0.1, "max_steps": 32},  # 3.2: 3, where ceil gave 4
        {"schedule.warmup.steps": 3, "schedule.total_steps": 32, "schedule.warmup.start_lr_lint": False},
    ),
    ({"lr_scheduler_type": "constant", "warmup_steps": 10}, {"schedule.decay.kind": "constant"}),
    (
        {"lr_scheduler_type": "cosine", "num_cycles": 0.5},
        {"schedule.decay.kind": "cosine", "schedule.decay.min_lr": 0.0},
    ),
    (
        {"lr_scheduler_type": "linear", "num_cycles": 3},
        {"schedule.decay.kind": "linear", "schedule.decay.min_lr": 0.0},
    ),
    ({"optim": "adamw"}, {"optim.name": "adamw"}),
    ({"report_to": "visualdl"}, {"train.visualdl": True}),
    ({"report_to": ["visualdl"]}, {"train.visualdl": True}),
    ({"report_to": "none"}, {"train.visualdl": False}),
    ({"report_to": []}, {"train.visualdl": False}),
    ({"disable_tqdm": True}, {"train.progress_bar": "off"}),
    ({"disable_tqdm": False}, {"train.progress_bar": "on"}),
    ({"do_train": True, "logging_dir": "x", "device": "cpu"}, {}),
    ({"dataloader_num_workers": 4}, {"train.data_workers": 4}),
    ({"dataloader_num_workers": 0}, {"train.data_workers": 0}),  # PaddleNLP's default: in the trainer
    ({"tensor_parallel_degree": -1, "sharding": "", "recompute": False, "do_export": False}, {}),
    (
        {"metric_for_best_model": "eval_loss", "greater_is_better": False},
        {"train.metric": "eval_loss", "train.metric_mode": "min"},
    ),  # fmt: skip
    ({"greater_is_better": True}, {"train.metric_mode": "max"}),
]


@pytest.mark.parametrize(("args", "expected"), TABLE, ids=[",".join(a) for a, _ in TABLE])
def test_training_args_table(args, expected):
    out = translate({**NLP, "training_args": args})
    assert "training_args" not in out
    if "lr_scheduler_type" not in args:  # PaddleNLP's default scheduler, when neither side chose one
        expected = {**expected, **LINEAR_DEFAULT}
    assert {key: _get(out, key) for key in expected} == expected
    # nothing else appears: only the mapped sections (plus the task) are present
    touched = {key.split(".")[0] for key in expected} | {"task"}
    assert set(out) == touched
    assert _leaves(out) == {key: value for key, value in expected.items() if not key.startswith("task.")}


def _leaves(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if key == "task" and not prefix:
            continue
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_translator_leaves_its_input_alone():
    data = {**NLP, "training_args": {"learning_rate": 0.1}}
    translate(data)
    assert data["training_args"] == {"learning_rate": 0.1} and "schedule" not in data


@pytest.mark.parametrize(
    ("args", "ours", "message"),
    [
        ({"learning_rate": 0.1}, {"schedule": {"base_lr": 0.2}},
         "training_args.learning_rate (0.1) conflicts with schedule.base_lr (0.2)"),
        ({"num_train_epochs": 3}, {"schedule": {"total_steps": 100}},
         "training_args.num_train_epochs (3) conflicts with schedule.total_steps (100)"),
        ({"max_steps": 50}, {"schedule": {"epochs": 2}},
         "training_args.max_steps (50) conflicts with schedule.epochs (2)"),
        ({"warmup_steps": 5}, {"schedule": {"warmup": {"epochs": 1}}},
         "training_args.warmup_steps (5) conflicts with schedule.warmup.epochs (1)"),
        ({"lr_scheduler_type": "cosine"}, {"schedule": {"decay": {"kind": "linear"}}},
         "training_args.lr_scheduler_type ('cosine') conflicts with schedule.decay.kind ('linear')"),
        ({"per_device_train_batch_size": 8}, {"train": {"batch_size": 16}},
         "training_args.per_device_train_batch_size (8) conflicts with train.batch_size (16)"),
        ({"seed": 7}, {"run": {"seed": True}}, "training_args.seed (7) conflicts with run.seed (True)"),
        ({"fp16": True}, {"train": {"amp": "off"}}, "training_args.fp16 (True) conflicts with train.amp ('off')"),
        ({"save_steps": 0}, {"checkpoint": {"every_steps": 10}},
         "training_args.save_steps (0) conflicts with checkpoint.every_steps (10)"),
        ({"evaluation_strategy": "no"}, {"train": {"eval_every_steps": 5}},
         "training_args.evaluation_strategy ('no') conflicts with train.eval_every_steps (5)"),
        ({"load_best_model_at_end": True}, {"train": {"metric": "accuracy"}},
         "training_args.load_best_model_at_end (True) conflicts with train.metric ('accuracy')"),
        ({"dataloader_num_workers": 4}, {"train": {"data_workers": 2}},
         "training_args.dataloader_num_workers (4) conflicts with train.data_workers (2)"),
        ({"per_device_eval_batch_size": 8}, {"task": {**NLP["task"], "options": {"eval_batch_size": 4}}},
         "training_args.per_device_eval_batch_size (8) conflicts with task.options.eval_batch_size (4)"),
    ],
)  # fmt: skip
def test_a_key_set_on_both_sides_is_an_error_naming_both(args, ours, message):
    with pytest.raises(ConfigError) as err:
        translate({**NLP, **ours, "training_args": args})
    assert err.value.line() == f"{message} (set it in one place only)"


def test_scheduler_defaults_do_not_override_our_decay_details():
    out = translate(
        {**NLP, "schedule": {"decay": {"min_lr": 1e-5}}, "training_args": {"lr_scheduler_type": "cosine"}}
    )
    assert out["schedule"]["decay"] == {"min_lr": 1e-5, "kind": "cosine"}


def test_warmup_ratio_uses_our_run_length_and_needs_one():
    out = translate({**NLP, "schedule": {"total_steps": 90}, "training_args": {"warmup_ratio": 0.1}})
    assert out["schedule"] == {
        "total_steps": 90,
        "warmup": {"steps": 9, "start_lr_lint": False},  # PaddleNLP's warmup starts at 0: no lint
        "decay": {"kind": "linear", "min_lr": 0.0},
    }
    with pytest.raises(ConfigError, match=r"^training_args.warmup_ratio \(0.1\) needs the run length"):
        translate({**NLP, "training_args": {"warmup_ratio": 0.1}})


def test_unknown_or_bad_names_are_config_errors():
    with pytest.raises(
        ConfigError,
        match=r"^training_args.learning_rte: not a PaddleNLP 2.8.1 TrainingArguments field; did you mean 'learning_rate'\?",
    ):
        translate({**NLP, "training_args": {"learning_rte": 1}})
    with pytest.raises(
        ConfigError, match=r"lr_scheduler_type: 'cosin' is not one of .*did you mean 'cosine'"
    ):
        translate({**NLP, "training_args": {"lr_scheduler_type": "cosin"}})


def test_a_model_dir_uri_gets_a_cache_under_run_dir_and_the_store_settings():
    data = {**NLP, "run": {"dir": "runs/x"}, "store": {"endpoint_url": "http://127.0.0.1:9"}}
    data["task"] = {"kind": "nlp_token_cls", "options": {"model_dir": "s3://b/models/tiny"}}
    opts = translate(data)["task"]["options"]
    assert opts == {"model_dir": "s3://b/models/tiny", "cache_dir": "runs/x/pretrained",
                    "store": {"endpoint_url": "http://127.0.0.1:9"}}  # fmt: skip
    local = translate(NLP)["task"]["options"]
    assert "cache_dir" not in local and "store" not in local


def test_load_config_applies_the_table_to_the_shipped_config():
    cfg = load_config(ROOT / "configs/nlp_seq_cls.yaml", ["training_args.max_steps=120"], env={})
    assert (cfg.schedule.base_lr, cfg.schedule.total_steps, cfg.schedule.warmup.steps) == (0.001, 120, 12)
    assert (cfg.schedule.decay.kind, cfg.train.batch_size, cfg.optim.grad_clip_norm) == ("linear", 32, 1.0)
    assert (cfg.checkpoint.every_steps, cfg.checkpoint.keep_last, cfg.train.log_every_steps) == (50, 3, 10)
    with pytest.raises(ConfigError, match="conflicts with schedule.total_steps"):
        load_config(ROOT / "configs/nlp_seq_cls.yaml", [], env={"WARMSTART_TOTAL_STEPS": "10"})


def test_training_args_belong_to_nlp_tasks_only():
    with pytest.raises(ConfigError, match="^training_args: unknown key"):
        load_config(ROOT / "configs/demo.yaml", ["training_args.learning_rate=0.1"], env={})
