"""Every PaddleNLP 2.8.1 ``TrainingArguments`` field is classified (mapped / not applicable / rejected), the
table in docs/nlp.md is the generated one, rejections name our equivalent, equal values are not conflicts,
and ``load_best_model_at_end``'s equivalent (``checkpoint.tag_best``) tags the best committed step."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from app.checkpoint.tags import read_tag, resolve_tag
from app.cli import main
from app.config import load_config
from app.errors import ConfigError
from app.store.registry import open_store
from app.tasks.nlp.args_rules import SCHEDULERS
from app.tasks.nlp.training_args import RULES, markdown_table
from app.tasks.nlp.translate import translate
from tests.train_helpers import ROOT, run_inprocess, tiny_overrides

NLP = {"task": {"kind": "nlp_seq_cls", "options": {"model_dir": "m", "train_file": "t", "eval_file": "e"}}}
SEQ = ROOT / "configs/nlp_seq_cls.yaml"


def _real_fields() -> dict[str, object]:
    import zlib  # noqa: F401  (before paddle: FIELD_NOTES)

    from paddlenlp.trainer import TrainingArguments

    out = {}
    for f in dataclasses.fields(TrainingArguments):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None  # required (output_dir)
    return out


def test_every_field_of_the_real_dataclass_is_classified_with_its_real_default():
    real = _real_fields()
    assert list(RULES) == list(real)  # same names, same order: nothing missing, nothing invented
    assert {n: r.default for n, r in RULES.items()} == real
    assert {r.kind for r in RULES.values()} == {"mapped", "ignored", "rejected"}


def test_scheduler_and_optimizer_names_are_paddlenlps():
    from paddlenlp.trainer.trainer_utils import OptimizerNames, SchedulerType

    assert set(SCHEDULERS) == {s.value for s in SchedulerType}
    assert {o.value for o in OptimizerNames} == {"adamw", "adafactor"}


def test_docs_hold_the_generated_table():
    assert markdown_table() in (ROOT / "docs/nlp.md").read_text(encoding="utf-8")


def _non_default(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    return "x" if value in (None, "") else f"{value}x"


REJECTED = [n for n, r in RULES.items() if r.kind == "rejected"]
IGNORED = [n for n, r in RULES.items() if r.kind == "ignored"]


@pytest.mark.parametrize("name", REJECTED)
def test_every_rejected_field_names_our_equivalent_unless_at_its_default(name):
    rule = RULES[name]
    value = _non_default(rule.default)
    with pytest.raises(ConfigError) as err:
        translate({**NLP, "training_args": {name: value}})
    assert (
        err.value.message
        == f"training_args.{name} ({value!r}): not supported here; our equivalent: {rule.ours}"
    )
    out = translate({**NLP, "training_args": {name: rule.default}})  # PaddleNLP's default asks for nothing
    assert set(out) == {"task", "schedule"}


@pytest.mark.parametrize("name", IGNORED)
def test_every_not_applicable_field_is_logged_by_name_and_dropped(name, caplog):
    with caplog.at_level(logging.WARNING, logger="app.tasks.nlp.translate"):
        out = translate({**NLP, "training_args": {name: _non_default(RULES[name].default)}})
    assert set(out) == {"task", "schedule"}
    assert [r.getMessage() for r in caplog.records] == [
        f"training_args.{name}: not applicable ({RULES[name].ours}); ignored"
    ]


def test_a_secret_is_named_never_shown(caplog):
    with caplog.at_level(logging.WARNING):
        translate({**NLP, "training_args": {"wandb_api_key": "s3cr3t-key"}})
    assert "wandb_api_key" in caplog.text and "s3cr3t" not in caplog.text


# (training_args, the one-line message) for values of mapped names that have no equivalent
REJECTED_VALUES = [
    ({"evaluation_strategy": "epoch"},
     "training_args.evaluation_strategy: 'epoch' is not supported (epochs are not step counts here)"),
    ({"save_strategy": "epoch"},
     "training_args.save_strategy: 'epoch' is not supported (epochs are not step counts here)"),
    ({"save_strategy": "sometimes"}, "training_args.save_strategy: 'sometimes' is not one of no, steps, epoch"),
    ({"evaluation_strategy": "often"}, "training_args.evaluation_strategy: 'often' is not one of no, steps, epoch"),
    ({"logging_strategy": "no"}, "training_args.logging_strategy: 'no' is not supported (we log by steps)"),
    ({"fp16": True, "fp16_opt_level": "O2"},
     "training_args.fp16_opt_level: 'O2' is not supported (train.amp runs Paddle's O1 auto-cast)"),
    ({"fp16": True, "bf16": True}, "training_args.fp16 and training_args.bf16: both true"),
    ({"optim": "adafactor"},
     "training_args.optim: 'adafactor' is not supported (PaddleNLP's other optimizer, adafactor, is not here)"),
    ({"report_to": "wandb"}, "training_args.report_to: 'wandb' is not supported (only VisualDL scalars are written)"),
    ({"lr_scheduler_type": "cosine", "num_cycles": 1.0},
     "training_args.num_cycles: 1.0 is not supported (our cosine is half a period, to 0)"),
    ({"lr_scheduler_type": "cosine_with_restarts"},
     "training_args.lr_scheduler_type: 'cosine_with_restarts' is not one of linear, cosine, constant, "
     "constant_with_warmup, polynomial"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REJECTED_VALUES, ids=[m[:40] for _, m in REJECTED_VALUES])
def test_values_without_an_equivalent_are_rejected(args, message):
    with pytest.raises(ConfigError) as err:
        translate({**NLP, "training_args": args})
    assert err.value.message.startswith(message)


def test_rejection_is_one_line_exit_2_naming_our_key(capsys):
    argv = ["config", "--config", str(SEQ), "--set", "training_args.evaluation_strategy=epoch"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "warmstart: config: training_args.evaluation_strategy: 'epoch' is not supported "
        "(epochs are not step counts here) (use train.eval_every_steps)"
    ]


@pytest.mark.parametrize(
    ("extra", "where", "expected"),
    [
        (["training_args.seed=7"], "run.seed", 7),  # run.seed: 7 in the shipped config
        (["training_args.per_device_train_batch_size=32", "train.batch_size=32"], "train.batch_size", 32),
        (["training_args.learning_rate=0.002", "schedule.base_lr=0.002"], "schedule.base_lr", 0.002),
        (["training_args.fp16=true", "train.amp=fp16"], "train.amp", "fp16"),
        (["training_args.save_strategy=no", "checkpoint.every_steps=null"], "checkpoint.every_steps", None),
        (["training_args.metric_for_best_model=eval_accuracy"], "train.metric", "accuracy"),
    ],
)
def test_equal_values_on_both_sides_are_not_a_conflict(extra, where, expected):
    node = load_config(SEQ, extra, env={})
    for part in where.split("."):
        node = getattr(node, part)
    assert node == expected


def test_equal_float_and_int_forms_and_bool_vs_number():
    assert translate({**NLP, "run": {"seed": 7}, "training_args": {"seed": 7}})["run"] == {"seed": 7}
    with pytest.raises(
        ConfigError, match=r"training_args.disable_tqdm \(True\) conflicts with train.progress_bar"
    ):
        translate({**NLP, "train": {"progress_bar": "on"}, "training_args": {"disable_tqdm": True}})


def _evals(run_dir: Path) -> list[tuple[int, float]]:
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return [(x["step"], x["metrics"]["accuracy"]) for x in lines if x.get("kind") == "eval"]


def test_tag_best_points_at_the_best_committed_step(tmp_path):
    run = tmp_path / "run"
    rc, session = run_inprocess(
        tiny_overrides(run, **{"checkpoint.tag_best": "best", "checkpoint.keep_last": 1})
    )
    assert rc == 0
    evals = _evals(run)
    best_step = max(evals, key=lambda e: (e[1], -e[0]))[0]  # ties: the first step reaching it
    store = open_store(str(run / "checkpoints"), session.cfg.store)
    assert read_tag(store, "best")["step"] == best_step == session.best["step"]
    assert resolve_tag(store, "best").step == best_step


def test_load_best_model_at_end_sets_the_tag_and_the_metric():
    over = ["training_args.load_best_model_at_end=true", "training_args.metric_for_best_model=accuracy"]
    cfg = load_config(SEQ, over, env={})
    assert (cfg.checkpoint.tag_best, cfg.train.metric, cfg.train.metric_mode) == ("best", "accuracy", "max")
    with pytest.raises(ConfigError, match=r"load_best_model_at_end \(True\) conflicts with train.metric"):
        load_config(SEQ, over[:1], env={})  # PaddleNLP's default metric is the loss
    with pytest.raises(ConfigError, match=r"checkpoint.tag_best: invalid tag name 'a/b'"):
        load_config(SEQ, ["checkpoint.tag_best=a/b"], env={})
