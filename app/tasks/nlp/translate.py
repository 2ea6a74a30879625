"""Accept PaddleNLP ``TrainingArguments`` names in a ``training_args:`` section and map them onto our keys.

Registered in ``app.tasks.base.CONFIG_TRANSLATORS`` for both NLP kinds; it runs on the merged raw config
(YAML, env, ``--set``) before validation. Every field of PaddleNLP's dataclass is classified in
:mod:`app.tasks.nlp.training_args` (mapped / not applicable / rejected). A value given both in
``training_args`` and in our own section is a :class:`ConfigError` naming both unless the two are equal,
and so is a sibling that decides the same thing (e.g. ``schedule.epochs`` vs ``max_steps``): nothing is
silently overridden. The table is in docs/nlp.md.
"""

from __future__ import annotations

import copy
import logging
from pathlib import PurePosixPath
from typing import Any

from app.config.typed import suggest
from app.errors import ConfigError
from app.tasks.nlp.args_rules import FILL, SCHEDULERS, SECTION, get_key, special
from app.tasks.nlp.options import is_uri
from app.tasks.nlp.training_args import EXTRA, RULES

__all__ = ["SIMPLE", "SCHEDULERS", "translate"]

log = logging.getLogger(__name__)

#: training_args name -> our dotted key, copied as is.
SIMPLE: dict[str, str] = {
    "learning_rate": "schedule.base_lr",
    "per_device_train_batch_size": "train.batch_size",
    "per_device_eval_batch_size": "task.options.eval_batch_size",
    "gradient_accumulation_steps": "train.grad_accum_steps",
    "save_total_limit": "checkpoint.keep_last",
    "weight_decay": "optim.weight_decay",
    "adam_beta1": "optim.beta1",
    "adam_beta2": "optim.beta2",
    "adam_epsilon": "optim.epsilon",
    "seed": "run.seed",
    "output_dir": "run.dir",
    "run_name": "run.name",
    "logging_steps": "train.log_every_steps",
    "dataloader_num_workers": "train.data_workers",
    "max_seq_length": "task.options.max_seq_len",
    "model_name_or_path": "task.options.model_dir",
}
#: Our keys that decide the same thing as a target key (setting either side is a conflict).
SIBLINGS: dict[str, tuple[str, ...]] = {
    "schedule.total_steps": ("schedule.epochs",),
    "schedule.epochs": ("schedule.total_steps",),
    "schedule.warmup.steps": ("schedule.warmup.epochs",),
    "schedule.warmup.epochs": ("schedule.warmup.steps",),
    "schedule.decay.kind": ("schedule.stages",),
}


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{SECTION}: cannot set {dotted}: {part} is not a mapping")
    node[last] = value


def _same(a: Any, b: Any) -> bool:
    """Equal values, a bool never equal to a number (``True == 1`` in Python)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _conflict(data: dict[str, Any], ours: str, name: str, value: Any, args: dict[str, Any]) -> None:
    for key in (ours, *SIBLINGS.get(ours, ())):
        found, current = get_key(data, key)
        if found and not (key == ours and _same(current, value)):
            raise ConfigError(
                f"{SECTION}.{name} ({args.get(name)!r}) conflicts with {key} ({current!r})",
                hint="set it in one place only",
            )


def _classify(args: dict[str, Any]) -> None:
    """Unknown names and rejected values are errors; not-applicable names are logged and dropped."""
    rules = {**RULES, **EXTRA}
    for name, value in args.items():
        rule = rules.get(name)
        if rule is None:
            raise ConfigError(
                f"{SECTION}.{name}: not a PaddleNLP 2.8.1 TrainingArguments field{suggest(str(name), rules)}",
                hint="see the table in docs/nlp.md",
            )
        if rule.kind == "ignored":
            log.warning("%s.%s: not applicable (%s); ignored", SECTION, name, rule.ours)
        elif rule.kind == "rejected" and not _same(value, rule.default):
            raise ConfigError(
                f"{SECTION}.{name} ({value!r}): not supported here; our equivalent: {rule.ours}",
                hint="remove it; the table is in docs/nlp.md",
            )


def _model_dir_defaults(data: dict[str, Any]) -> None:
    """A model_dir URI is downloaded under <run.dir>/pretrained with the run's store settings."""
    found, model_dir = get_key(data, "task.options.model_dir")
    if not found or not isinstance(model_dir, str) or not is_uri(model_dir):
        return
    if not get_key(data, "task.options.cache_dir")[0]:
        run_dir = get_key(data, "run.dir")[1] or "runs/run"
        _put(data, "task.options.cache_dir", str(PurePosixPath(str(run_dir)) / "pretrained"))
    if not get_key(data, "task.options.store")[0]:
        _put(data, "task.options.store", copy.deepcopy(get_key(data, "store")[1] or {}))


def translate(data: dict[str, Any]) -> dict[str, Any]:
    """A new raw config with ``training_args`` mapped onto our sections (the input is not changed)."""
    out = copy.deepcopy(data)
    if SECTION not in out:
        _model_dir_defaults(out)
        return out
    args = out.pop(SECTION) or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{SECTION}: expected a mapping, got {args!r}")
    _classify(args)
    mapped = {ours: (name, args[name]) for name, ours in SIMPLE.items() if name in args}
    mapped.update(special(args, out))
    for ours, (name, value) in mapped.items():
        if not ours.startswith(FILL):
            _conflict(out, ours, name, value, args)
    for ours, (_, value) in mapped.items():
        if ours.startswith(FILL):
            ours = ours[len(FILL) :]
            if get_key(out, ours)[0]:
                continue  # a default of the scheduler type; the user's own schedule.decay value stays
        _put(out, ours, value)
    _model_dir_defaults(out)
    return out
