"""Accept PaddleNLP ``TrainingArguments`` names in a ``training_args:`` section and map them onto our keys.

Registered in ``app.tasks.base.CONFIG_TRANSLATORS`` for both NLP kinds; it runs on the merged raw config
(YAML, env, ``--set``) before validation. A value given both in ``training_args`` and in our own section
(or a sibling that decides the same thing, e.g. ``schedule.total_steps`` vs ``num_train_epochs``) is a
:class:`ConfigError` naming both: nothing is silently overridden. The table is in docs/nlp.md.
"""

from __future__ import annotations

import copy
import math
from pathlib import PurePosixPath
from typing import Any

from app.config.typed import suggest
from app.errors import ConfigError
from app.tasks.nlp.options import is_uri

__all__ = ["SIMPLE", "SCHEDULERS", "translate"]

SECTION = "training_args"
#: Prefix of a mapped key that only fills in a default: our own value, if set, is kept without error.
FILL = "?"

#: training_args name -> our dotted key, copied as is.
SIMPLE: dict[str, str] = {
    "learning_rate": "schedule.base_lr",
    "per_device_train_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum_steps",
    "save_steps": "checkpoint.every_steps",
    "save_total_limit": "checkpoint.keep_last",
    "weight_decay": "optim.weight_decay",
    "adam_beta1": "optim.beta1",
    "adam_beta2": "optim.beta2",
    "adam_epsilon": "optim.epsilon",
    "seed": "run.seed",
    "output_dir": "run.dir",
    "eval_steps": "train.eval_every_steps",
    "logging_steps": "train.log_every_steps",
}
#: lr_scheduler_type -> our decay section (PaddleNLP's linear/cosine decay to 0).
SCHEDULERS: dict[str, dict[str, Any]] = {
    "linear": {"kind": "linear", "min_lr": 0.0},
    "cosine": {"kind": "cosine", "min_lr": 0.0},
    "constant": {"kind": "constant"},
    "constant_with_warmup": {"kind": "constant"},
    "polynomial": {"kind": "polynomial"},
}
#: Names handled by the special rules below.
SPECIAL = (
    "max_steps", "num_train_epochs", "warmup_steps", "warmup_ratio", "lr_scheduler_type", "lr_end",
    "power", "max_grad_norm", "metric_for_best_model", "greater_is_better",
)  # fmt: skip
#: Our keys that decide the same thing as a target key (setting either side is a conflict).
SIBLINGS: dict[str, tuple[str, ...]] = {
    "schedule.total_steps": ("schedule.epochs",),
    "schedule.epochs": ("schedule.total_steps",),
    "schedule.warmup.steps": ("schedule.warmup.epochs",),
    "schedule.warmup.epochs": ("schedule.warmup.steps",),
    "schedule.decay.kind": ("schedule.stages",),
}


def _get(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{SECTION}: cannot set {dotted}: {part} is not a mapping")
    node[last] = value


def _run_length(args: dict[str, Any], data: dict[str, Any]) -> tuple[str, float] | None:
    """("steps", n) or ("epochs", e): the run length as training_args or our schedule give it."""
    if (args.get("max_steps") or -1) > 0:
        return "steps", args["max_steps"]
    if args.get("num_train_epochs") is not None:
        return "epochs", args["num_train_epochs"]
    for kind, key in (("steps", "schedule.total_steps"), ("epochs", "schedule.epochs")):
        found, value = _get(data, key)
        if found and isinstance(value, (int, float)):
            return kind, value
    return None


def _warmup(args: dict[str, Any], data: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """PaddleNLP: warmup_steps > 0 wins over warmup_ratio; a ratio scales the run length."""
    steps, ratio = args.get("warmup_steps") or 0, args.get("warmup_ratio") or 0.0
    if steps > 0:
        return {"schedule.warmup.steps": ("warmup_steps", steps)}
    if ratio <= 0:
        return {}
    length = _run_length(args, data)
    if length is None:
        raise ConfigError(
            f"{SECTION}.warmup_ratio ({ratio}) needs the run length",
            hint=f"set {SECTION}.max_steps or {SECTION}.num_train_epochs",
        )
    kind, n = length
    if kind == "steps":
        return {"schedule.warmup.steps": ("warmup_ratio", math.ceil(ratio * n))}
    return {"schedule.warmup.epochs": ("warmup_ratio", ratio * n)}


def _special(args: dict[str, Any], data: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    if (args.get("max_steps") or -1) > 0:  # PaddleNLP: max_steps > 0 overrides num_train_epochs
        out["schedule.total_steps"] = ("max_steps", args["max_steps"])
    elif args.get("num_train_epochs") is not None:
        out["schedule.epochs"] = ("num_train_epochs", args["num_train_epochs"])
    out.update(_warmup(args, data))
    if "lr_scheduler_type" in args:
        name = args["lr_scheduler_type"]
        if name not in SCHEDULERS:
            raise ConfigError(
                f"{SECTION}.lr_scheduler_type: {name!r} is not one of {', '.join(SCHEDULERS)}"
                f"{suggest(str(name), SCHEDULERS)}"
            )
        decay = dict(SCHEDULERS[name])
        out["schedule.decay.kind"] = ("lr_scheduler_type", decay.pop("kind"))
        if name == "polynomial":  # PaddleNLP's defaults, filled in unless given on either side
            decay.update(end_lr=1e-7, power=1.0)
            for ours, theirs in (("end_lr", "lr_end"), ("power", "power")):
                if theirs in args:
                    out[f"schedule.decay.{ours}"] = (theirs, args[theirs])
                    decay.pop(ours)
        for key, value in decay.items():
            out[f"{FILL}schedule.decay.{key}"] = ("lr_scheduler_type", value)
    if "max_grad_norm" in args:  # 0 or null switches clipping off, as in PaddleNLP
        out["optim.grad_clip_norm"] = ("max_grad_norm", args["max_grad_norm"] or None)
    if "metric_for_best_model" in args:
        metric = str(args["metric_for_best_model"])
        if metric.startswith("eval_") and metric != "eval_loss":  # PaddleNLP prefixes eval metrics
            metric = metric[len("eval_") :]
        out["train.metric"] = ("metric_for_best_model", metric)
    if "greater_is_better" in args:
        out["train.metric_mode"] = ("greater_is_better", "max" if args["greater_is_better"] else "min")
    return out


def _conflict(data: dict[str, Any], ours: str, name: str, args: dict[str, Any]) -> None:
    for key in (ours, *SIBLINGS.get(ours, ())):
        found, value = _get(data, key)
        if found:
            raise ConfigError(
                f"{SECTION}.{name} ({args.get(name)!r}) conflicts with {key} ({value!r})",
                hint="set it in one place only",
            )


def _model_dir_defaults(data: dict[str, Any]) -> None:
    """A model_dir URI is downloaded under <run.dir>/pretrained with the run's store settings."""
    found, model_dir = _get(data, "task.options.model_dir")
    if not found or not isinstance(model_dir, str) or not is_uri(model_dir):
        return
    if not _get(data, "task.options.cache_dir")[0]:
        run_dir = _get(data, "run.dir")[1] or "runs/run"
        _put(data, "task.options.cache_dir", str(PurePosixPath(str(run_dir)) / "pretrained"))
    if not _get(data, "task.options.store")[0]:
        _put(data, "task.options.store", copy.deepcopy(_get(data, "store")[1] or {}))


def translate(data: dict[str, Any]) -> dict[str, Any]:
    """A new raw config with ``training_args`` mapped onto our sections (the input is not changed)."""
    out = copy.deepcopy(data)
    args = out.pop(SECTION, None) or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{SECTION}: expected a mapping, got {args!r}")
    known = (*SIMPLE, *SPECIAL)
    for name in args:
        if name not in known:
            raise ConfigError(
                f"{SECTION}.{name}: not supported{suggest(str(name), known)} "
                f"(supported: {', '.join(sorted(known))}; see docs/nlp.md)"
            )
    mapped = {ours: (name, args[name]) for name, ours in SIMPLE.items() if name in args}
    mapped.update(_special(args, out))
    for ours, (name, _) in mapped.items():
        if not ours.startswith(FILL):
            _conflict(out, ours, name, args)
    for ours, (_, value) in mapped.items():
        if ours.startswith(FILL):
            ours = ours[len(FILL) :]
            if _get(out, ours)[0]:
                continue  # a default of the scheduler type; the user's own schedule.decay value stays
        _put(out, ours, value)
    _model_dir_defaults(out)
    return out
