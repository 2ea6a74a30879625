"""The ``training_args`` names that need a rule, not a copy: run length, warmup, scheduler, strategies,
mixed precision, best-model tracking, optimizer and reporting. Each rule follows PaddleNLP 2.8.1's
``TrainingArguments.__post_init__`` / ``Trainer`` semantics; values with no equivalent are rejected here.

Every function returns ``{our dotted key: (training_args name, value)}``; a key prefixed with
:data:`FILL` only fills in a default and never overrides or conflicts.
"""

from __future__ import annotations

from typing import Any

from app.config.typed import suggest
from app.errors import ConfigError

__all__ = ["SECTION", "FILL", "SCHEDULERS", "DEFAULT_SCHEDULER", "Mapped", "get_key", "special"]

SECTION = "training_args"
FILL = "?"
Mapped = dict[str, tuple[str, Any]]

#: lr_scheduler_type (PaddleNLP's ``SchedulerType``) -> our decay section (linear/cosine decay to 0).
SCHEDULERS: dict[str, dict[str, Any]] = {
    "linear": {"kind": "linear", "min_lr": 0.0},
    "cosine": {"kind": "cosine", "min_lr": 0.0},
    "constant": {"kind": "constant"},
    "constant_with_warmup": {"kind": "constant"},
    "polynomial": {"kind": "polynomial"},
}
#: PaddleNLP's default ``lr_scheduler_type``: filled in when neither side chooses a decay.
DEFAULT_SCHEDULER = "linear"
STRATEGIES = ("no", "steps", "epoch")
#: PaddleNLP's defaults of names that other rules fall back on.
LOGGING_STEPS = 500
SAVE_STEPS = 500
#: Filled in when the warmup comes from training_args: no start_lr 0 lint (PaddleNLP's own convention).
_QUIET = f"{FILL}schedule.warmup.start_lr_lint"


def get_key(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _reject(name: str, value: Any, why: str, ours: str) -> ConfigError:
    return ConfigError(f"{SECTION}.{name}: {value!r} is not supported ({why})", hint=f"use {ours}")


def _run_length(args: dict[str, Any], data: dict[str, Any]) -> tuple[str, float] | None:
    """("steps", n) or ("epochs", e): the run length as training_args or our schedule give it."""
    if (args.get("max_steps") or -1) > 0:
        return "steps", args["max_steps"]
    if args.get("num_train_epochs") is not None:
        return "epochs", args["num_train_epochs"]
    for kind, key in (("steps", "schedule.total_steps"), ("epochs", "schedule.epochs")):
        found, value = get_key(data, key)
        if found and isinstance(value, (int, float)):
            return kind, value
    return None


def _length(args: dict[str, Any]) -> Mapped:
    if (args.get("max_steps") or -1) > 0:  # PaddleNLP: max_steps > 0 overrides num_train_epochs
        return {"schedule.total_steps": ("max_steps", args["max_steps"])}
    if args.get("num_train_epochs") is not None:
        return {"schedule.epochs": ("num_train_epochs", args["num_train_epochs"])}
    return {}


def _warmup(args: dict[str, Any], data: dict[str, Any]) -> Mapped:
    """PaddleNLP: warmup_steps > 0 wins over warmup_ratio; a ratio scales the run length, rounded down."""
    steps, ratio = args.get("warmup_steps") or 0, args.get("warmup_ratio") or 0.0
    # PaddleNLP's warmup starts at LR 0: not the lint's hand-written mistake (unless start_lr is ours)
    quiet = {} if get_key(data, "schedule.warmup.start_lr")[0] else {_QUIET: ("warmup_steps", False)}
    if steps > 0:
        return {"schedule.warmup.steps": ("warmup_steps", steps), **quiet}
    if ratio <= 0:
        return {}
    length = _run_length(args, data)
    if length is None:
        raise ConfigError(
            f"{SECTION}.warmup_ratio ({ratio}) needs the run length",
            hint=f"set {SECTION}.max_steps or {SECTION}.num_train_epochs",
        )
    kind, n = length
    if kind == "steps":  # PaddleNLP's Trainer.create_scheduler: int(), not get_warmup_steps' ceil()
        return {"schedule.warmup.steps": ("warmup_ratio", int(ratio * n)), **quiet}
    return {"schedule.warmup.epochs": ("warmup_ratio", ratio * n), **quiet}


def _scheduler(args: dict[str, Any], data: dict[str, Any]) -> Mapped:
    name = args.get("lr_scheduler_type", DEFAULT_SCHEDULER)
    if name not in SCHEDULERS:
        raise ConfigError(
            f"{SECTION}.lr_scheduler_type: {name!r} is not one of {', '.join(SCHEDULERS)}"
            f"{suggest(str(name), SCHEDULERS)}"
        )
    if name == "cosine" and args.get("num_cycles", 0.5) != 0.5:
        raise _reject("num_cycles", args["num_cycles"], "our cosine is half a period, to 0", "0.5")
    decay = dict(SCHEDULERS[name])
    out: Mapped = {}
    if "lr_scheduler_type" in args:
        out["schedule.decay.kind"] = ("lr_scheduler_type", decay.pop("kind"))
    elif get_key(data, "schedule.decay")[0] or get_key(data, "schedule.stages")[0]:
        return {}  # our own decay decides; PaddleNLP's default does not apply
    if name == "polynomial":  # PaddleNLP's defaults, filled in unless given on either side
        decay.update(end_lr=1e-7, power=1.0)
        for ours, theirs in (("end_lr", "lr_end"), ("power", "power")):
            if theirs in args:
                out[f"schedule.decay.{ours}"] = (theirs, args[theirs])
                decay.pop(ours)
    for key, value in decay.items():
        out[f"{FILL}schedule.decay.{key}"] = ("lr_scheduler_type", value)
    return out


def _strategy(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is False:  # YAML 1.1 reads an unquoted `no` as false
        value = "no"
    if value is not None and value not in STRATEGIES:
        raise ConfigError(f"{SECTION}.{name}: {value!r} is not one of {', '.join(STRATEGIES)}")
    return value


def _intervals(args: dict[str, Any]) -> Mapped:
    """evaluation_strategy / eval_steps, save_strategy / save_steps, logging_strategy."""
    out: Mapped = {}
    evaluation = _strategy(args, "evaluation_strategy")
    if evaluation == "epoch":
        raise _reject(
            "evaluation_strategy", "epoch", "epochs are not step counts here", "train.eval_every_steps"
        )
    if evaluation == "no":
        out["train.eval_every_steps"] = ("evaluation_strategy", None)
    elif evaluation == "steps" or args.get("eval_steps"):  # PaddleNLP falls back on logging_steps
        every = args.get("eval_steps") or args.get("logging_steps") or LOGGING_STEPS
        out["train.eval_every_steps"] = (
            "eval_steps" if args.get("eval_steps") else "evaluation_strategy",
            every,
        )
    save = _strategy(args, "save_strategy")
    if save == "epoch":
        raise _reject("save_strategy", "epoch", "epochs are not step counts here", "checkpoint.every_steps")
    if save == "no":
        out["checkpoint.every_steps"] = ("save_strategy", None)
    elif save == "steps" or "save_steps" in args:  # save_steps 0: no step saves, as in PaddleNLP
        steps = args.get("save_steps", SAVE_STEPS)
        out["checkpoint.every_steps"] = (
            "save_steps" if "save_steps" in args else "save_strategy",
            steps or None,
        )
    if _strategy(args, "logging_strategy") not in (None, "steps"):
        raise _reject(
            "logging_strategy", args["logging_strategy"], "we log by steps", "train.log_every_steps"
        )
    return out


def _amp(args: dict[str, Any]) -> Mapped:
    level = args.get("fp16_opt_level", "O1")
    if level != "O1":
        raise _reject(
            "fp16_opt_level", level, "train.amp runs Paddle's O1 auto-cast", "train.amp: fp16 or bf16"
        )
    if args.get("fp16") and args.get("bf16"):
        raise ConfigError(f"{SECTION}.fp16 and {SECTION}.bf16: both true", hint="set train.amp: fp16 or bf16")
    if "fp16" not in args and "bf16" not in args:
        return {}
    name = "bf16" if args.get("bf16") or "fp16" not in args else "fp16"
    amp = "fp16" if args.get("fp16") else "bf16" if args.get("bf16") else "off"
    return {"train.amp": (name, amp)}


def _best(args: dict[str, Any]) -> Mapped:
    """PaddleNLP: load_best_model_at_end defaults the metric to "loss"; greater_is_better follows it."""
    out: Mapped = {}
    metric = args.get("metric_for_best_model")
    if metric is None and args.get("load_best_model_at_end"):
        metric = "loss"
    if metric is not None:
        metric = str(metric)
        name = str(metric if metric.startswith("eval_") else f"eval_{metric}")  # PaddleNLP's prefix
        ours = name if name == "eval_loss" else name[len("eval_") :]
        source = "metric_for_best_model" if "metric_for_best_model" in args else "load_best_model_at_end"
        out["train.metric"] = (source, ours)
    if args.get("greater_is_better") is not None:
        out["train.metric_mode"] = ("greater_is_better", "max" if args["greater_is_better"] else "min")
    elif metric is not None:
        out["train.metric_mode"] = (source, "min" if metric in ("loss", "eval_loss") else "max")
    if args.get("load_best_model_at_end"):
        out["checkpoint.tag_best"] = ("load_best_model_at_end", "best")
    return out


def _report(value: Any) -> bool:
    names = value if isinstance(value, list) else ["visualdl" if value is None else value]
    if all(n == "none" for n in names):
        return False
    if names == ["visualdl"]:
        return True
    raise _reject("report_to", value, "only VisualDL scalars are written", "train.visualdl: true or false")


def _misc(args: dict[str, Any]) -> Mapped:
    out: Mapped = {}
    if "max_grad_norm" in args:  # 0 or null switches clipping off, as in PaddleNLP
        out["optim.grad_clip_norm"] = ("max_grad_norm", args["max_grad_norm"] or None)
    if "optim" in args:
        if args["optim"] != "adamw":
            raise _reject(
                "optim", args["optim"], "PaddleNLP's other optimizer, adafactor, is not here", "optim.name"
            )
        out["optim.name"] = ("optim", "adamw")
    if "report_to" in args:
        out["train.visualdl"] = ("report_to", _report(args["report_to"]))
    if args.get("disable_tqdm") is not None:
        out["train.progress_bar"] = ("disable_tqdm", "off" if args["disable_tqdm"] else "on")
    return out


def special(args: dict[str, Any], data: dict[str, Any]) -> Mapped:
    """The mapped keys of every rule-based name present in ``args``."""
    out = _length(args)
    if args.get("lr_scheduler_type") != "constant":  # PaddleNLP's constant schedule has no warmup
        out.update(_warmup(args, data))
    for part in (_scheduler(args, data), _intervals(args), _amp(args)):
        out.update(part)
    out.update(_best(args))
    out.update(_misc(args))
    return out
