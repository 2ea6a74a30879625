"""Every field of PaddleNLP 2.8.1's ``TrainingArguments``, classified: mapped, not applicable, or rejected.

Plain data (no PaddleNLP import: loading a config must not touch Paddle's signal handlers). The translator
(:mod:`app.tasks.nlp.translate`) acts on it; ``python -m app.tasks.nlp.training_args`` prints the table in
docs/nlp.md, and a test checks that the table covers exactly the fields of the installed dataclass and that
the recorded defaults are PaddleNLP's.

- **mapped**: the value sets one of our keys (the ``ours`` column; rules in the translator);
- **ignored** (not applicable): a logged warning names the field; nothing changes;
- **rejected**: exit 2 naming our equivalent, unless the value is PaddleNLP's default (it asks for nothing).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ArgRule", "RULES", "EXTRA", "markdown_table", "main"]

Kind = Literal["mapped", "ignored", "rejected"]


@dataclass(frozen=True)
class ArgRule:
    """How one ``training_args`` name is handled."""

    kind: Kind
    #: Our key(s) or command (mapped, rejected) or why it does not apply (ignored).
    ours: str
    #: PaddleNLP's default (the dataclass field default); a rejected field set to it is accepted.
    default: Any = None
    note: str = ""


def _m(ours: str, default: Any, note: str = "") -> ArgRule:
    return ArgRule("mapped", ours, default, note)


def _i(why: str, default: Any) -> ArgRule:
    return ArgRule("ignored", why, default)


def _r(ours: str, default: Any, note: str = "") -> ArgRule:
    return ArgRule("rejected", ours, default, note)


_PARALLEL = "`warmstart launch` (data parallel only; see docs/distributed.md)"
_NO_EPOCH = "epochs are not step counts at config time"

#: PaddleNLP 2.8.1 ``TrainingArguments`` field -> rule, in the dataclass's order.
RULES: dict[str, ArgRule] = {
    "output_dir": _m("run.dir", None),
    "overwrite_output_dir": _i("a run folder is resumed, never overwritten", False),
    "do_train": _i("`warmstart train` always trains", False),
    "do_eval": _i("evaluation follows `train.eval_every_steps` and the end of training", False),
    "do_predict": _i("no prediction pass; use the exported model", False),
    "do_export": _r("`warmstart export`", False),
    "evaluation_strategy": _m(
        "train.eval_every_steps",
        "no",
        "`steps`: every `eval_steps` (else `logging_steps`, PaddleNLP's fallback); `no`: null (we still "
        f"evaluate once at the end); `epoch`: rejected ({_NO_EPOCH})",
    ),  # fmt: skip
    "prediction_loss_only": _i("evaluation reports the task's metrics and `eval_loss`", False),
    "per_device_train_batch_size": _m("train.batch_size", 8),
    "per_device_eval_batch_size": _m("task.options.eval_batch_size", 8),
    "gradient_accumulation_steps": _m("train.grad_accum_steps", 1),
    "eval_accumulation_steps": _i("evaluation keeps its outputs on the host", None),
    "learning_rate": _m("schedule.base_lr", 5e-05),
    "weight_decay": _m("optim.weight_decay", 0.0, "not on `*bias*` / `*norm*` (`optim.no_decay`)"),
    "adam_beta1": _m("optim.beta1", 0.9),
    "adam_beta2": _m("optim.beta2", 0.999),
    "adam_epsilon": _m("optim.epsilon", 1e-08),
    "max_grad_norm": _m("optim.grad_clip_norm", 1.0, "0 or null = no clipping"),
    "num_train_epochs": _m("schedule.epochs", 1.0, "ignored when `max_steps` > 0 (PaddleNLP's rule)"),
    "max_steps": _m("schedule.total_steps", -1, "when > 0"),
    "lr_scheduler_type": _m("schedule.decay", "linear", "see the scheduler table below"),
    "warmup_ratio": _m(
        "schedule.warmup.steps / .epochs",
        0.0,
        "int(ratio × `max_steps`) steps (rounded down, as PaddleNLP's `Trainer.create_scheduler`), or ratio "
        "× `num_train_epochs` epochs (converted to steps rounded up: can be 1 step longer than PaddleNLP's)",
    ),  # fmt: skip
    "warmup_steps": _m("schedule.warmup.steps", 0, "> 0 wins over `warmup_ratio`"),
    "num_cycles": _m("schedule.decay.kind: cosine", 0.5, "only 0.5 (half a cosine to 0); others rejected"),
    "lr_end": _m("schedule.decay.end_lr", 1e-07, "polynomial only"),
    "power": _m("schedule.decay.power", 1.0, "polynomial only"),
    "log_on_each_node": _i("rank 0 logs", True),
    "logging_dir": _i("VisualDL scalars go to `<run.dir>/visualdl` (`train.visualdl`)", None),
    "logging_strategy": _m("train.log_every_steps", "steps", "only `steps`; `no` / `epoch` rejected"),
    "logging_first_step": _i("the first log line is at `train.log_every_steps`", False),
    "logging_steps": _m("train.log_every_steps", 500),
    "save_strategy": _m(
        "checkpoint.every_steps",
        "steps",
        f"`steps`: every `save_steps`; `no`: null (saves at the end, on a new best, on preemption); "
        f"`epoch`: rejected ({_NO_EPOCH})",
    ),  # fmt: skip
    "save_steps": _m("checkpoint.every_steps", 500, "0 = no step saves (null), as in PaddleNLP"),
    "save_total_limit": _m("checkpoint.keep_last", None, "null keeps all"),
    "save_on_each_node": _i("rank 0 saves; the store is shared", False),
    "no_cuda": _i("the device comes from the installed Paddle and `CUDA_VISIBLE_DEVICES`", False),
    "seed": _m("run.seed", 42),
    "bf16": _m("train.amp", False, "true → `bf16`"),
    "fp16": _m("train.amp", False, "true → `fp16`; `fp16` and `bf16` both false → `off`"),
    "fp16_opt_level": _m("train.amp", "O1", "`O1` only (auto_cast O1); `O2` rejected"),
    "amp_master_grad": _r("train.amp (O1 keeps fp32 parameters)", False),
    "bf16_full_eval": _r("train.amp (evaluation runs in fp32)", False),
    "fp16_full_eval": _r("train.amp (evaluation runs in fp32)", False),
    "amp_custom_black_list": _r("train.amp (Paddle's default O1 lists)", None),
    "amp_custom_white_list": _r("train.amp (Paddle's default O1 lists)", None),
    "sharding": _r(_PARALLEL, ""),
    "sharding_degree": _r(_PARALLEL, -1),
    "sharding_parallel_degree": _r(_PARALLEL, -1),
    "save_sharded_model": _r(_PARALLEL, False),
    "load_sharded_model": _r(_PARALLEL, False),
    "tensor_parallel_degree": _r(_PARALLEL, -1),
    "pipeline_parallel_degree": _r(_PARALLEL, -1),
    "sep_parallel_degree": _r(_PARALLEL, -1),
    "data_parallel_config": _r(_PARALLEL, ""),
    "tensor_parallel_config": _r(_PARALLEL, ""),
    "pipeline_parallel_config": _r(_PARALLEL, ""),
    "sharding_parallel_config": _r(_PARALLEL, ""),
    "hybrid_parallel_topo_order": _r(_PARALLEL, None),
    "recompute": _r("nothing (no activation recomputation)", False),
    "scale_loss": _i("fp16 loss scaling uses Paddle's default", 32768),
    "minimum_eval_times": _r("train.eval_every_steps", None),
    "local_rank": _i("set by `warmstart launch` / `paddle.distributed.launch`", -1),
    "dataloader_drop_last": _i(
        "an epoch's tail shorter than one global micro-batch is always dropped", False
    ),
    "eval_steps": _m("train.eval_every_steps", None, "also without `evaluation_strategy` (then `steps`)"),
    "max_evaluate_steps": _r("task.options.eval_file (evaluate on a smaller file)", -1),
    "dataloader_num_workers": _m(
        "train.data_workers",
        0,
        "0 = batches made in the trainer process; unset: our auto rule (docs/data.md)",
    ),
    "past_index": _i("no model here returns past states", -1),
    "run_name": _m("run.name", None),
    "device": _i("the device comes from the installed Paddle and `CUDA_VISIBLE_DEVICES`", "gpu"),
    "disable_tqdm": _m("train.progress_bar", None, "true → `off`, false → `on`"),
    "remove_unused_columns": _i("the task reads only its configured columns", True),
    "label_names": _i("the label column is `task.options.label_column`", None),
    "load_best_model_at_end": _m(
        "checkpoint.tag_best: best",
        False,
        "the best step is tagged `best` at the end; `warmstart export --from URI#best` gives that model",
    ),  # fmt: skip
    "metric_for_best_model": _m(
        "train.metric", None, "`eval_` prefix dropped except `eval_loss`; `loss` → `eval_loss`"
    ),
    "greater_is_better": _m(
        "train.metric_mode", None, "true → `max`; unset: `min` for a loss metric, else `max` (PaddleNLP)"
    ),
    "ignore_data_skip": _r("nothing (a resume always restores the exact data position)", False),
    "optim": _m("optim.name", "adamw", "`adamw` only; `adafactor` rejected"),
    "report_to": _m("train.visualdl", None, "`visualdl` → true, `none` → false; others rejected"),
    "wandb_api_key": _i("no W&B reporting (the value is never logged)", None),
    "resume_from_checkpoint": _r(
        "checkpoint.uri (a run resumes from its own latest checkpoint) or init.from + init.mode: resume", None
    ),
    "skip_memory_metrics": _i("no memory metrics are logged", True),
    "flatten_param_grads": _r("nothing (gradients stay per parameter)", False),
    "lazy_data_processing": _i("data is tokenized once when the task is built", True),
    "skip_profile_timer": _i("no profile timers", True),
    "distributed_dataloader": _r(_PARALLEL, False),
    "unified_checkpoint": _r("checkpoint.* (our own checkpoint format)", False),
    "to_static": _r("nothing (dynamic graph; `warmstart export` writes the static program)", False),
    "unified_checkpoint_config": _r("checkpoint.* (our own checkpoint format)", ""),
    "ignore_load_lr_and_optim": _r("init.mode: weights (model only) or partial", False),
    "ignore_save_lr_and_optim": _r("nothing (every checkpoint holds the full training state)", False),
    "force_reshard_pp": _r(_PARALLEL, False),
    "enable_auto_parallel": _r(_PARALLEL, False),
    "use_expert_parallel": _r(_PARALLEL, False),
}

#: Names of PaddleNLP's example ``DataArguments`` / ``ModelArguments`` often passed with the training
#: arguments; accepted in ``training_args`` too.
EXTRA: dict[str, ArgRule] = {
    "max_seq_length": _m("task.options.max_seq_len", 128, "PaddleNLP examples' DataArguments"),
    "model_name_or_path": _m(
        "task.options.model_dir",
        None,
        "PaddleNLP examples' ModelArguments; a name is read from PaddleNLP's cache",
    ),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The docs/nlp.md table: every field, its class, our key and notes."""
    rows = ["| `training_args` | class | our key / equivalent | notes |", "|---|---|---|---|"]
    for name, rule in {**RULES, **EXTRA}.items():
        ours = rule.ours if rule.kind == "ignored" or " " in rule.ours else f"`{rule.ours}`"
        note = rule.note
        if rule.kind == "rejected":
            note = f"accepted only at PaddleNLP's default `{rule.default!r}`" + (f"; {note}" if note else "")
        kind = "not applicable" if rule.kind == "ignored" else rule.kind
        rows.append(f"| `{name}` | {kind} | {_cell(ours)} | {_cell(note)} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
