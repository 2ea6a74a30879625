"""Accept PaddleOCR's own ``Global`` / ``Optimizer`` sections in an ``ocr_rec`` config and map them onto ours.

Registered in ``app.tasks.base.CONFIG_TRANSLATORS``; runs on the merged raw config (YAML, env, ``--set``)
before validation and returns a new dict. The table is in docs/ocr.md.

Conflicts: **our own sections win.** Each PaddleOCR setting fills a group of our keys (e.g.
``Optimizer.lr.warmup_epoch`` fills ``schedule.warmup``); if the user set any key of that group
(in YAML, a ``WARMSTART_*`` env var or ``--set``), the PaddleOCR value is dropped and a warning names both.
That is what lets ``WARMSTART_BASE_LR`` or ``--set schedule.base_lr=...`` override a pasted PaddleOCR
config. Unknown ``Optimizer`` keys and unsupported LR names are errors; ``Global`` keys that have no
meaning here (``use_gpu``, ``save_model_dir``, ...) are ignored with a warning. ``Global.pretrained_model``
and ``Global.checkpoints`` become ``init.*`` (:mod:`app.tasks.ocr.translate_init`). ``Architecture``, ``Loss``,
``PostProcess`` and ``Metric`` are checked and mapped by :mod:`app.tasks.ocr.translate_arch`, ``Train`` and
``Eval`` by :mod:`app.tasks.ocr.translate_data`. ``Global.character_dict_path`` of the form
``ppocr/utils/<name>`` (and no such local file) becomes ``task.options.builtin_dict: <name>``; our own
``character_dict_path`` or ``builtin_dict`` wins over it. ``train.metric`` defaults to ``word_accuracy``
(PaddleOCR's ``acc``) when neither our section nor ``Metric`` sets it.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from app.config.typed import suggest
from app.errors import ConfigError
from app.tasks.ocr import translate_arch
from app.tasks.ocr.translate_data import dataset_items
from app.tasks.ocr.translate_init import INIT_KEYS, apply_init

__all__ = ["OPTIMIZERS", "LR_NAMES", "GLOBAL_KEYS", "OPTIMIZER_KEYS", "translate"]

log = logging.getLogger(__name__)

#: PaddleOCR ``Optimizer.name`` -> ``optim.name``.
OPTIMIZERS = {"Adam": "adam", "AdamW": "adamw", "Momentum": "momentum", "SGD": "sgd"}
#: ``Optimizer.lr.name`` -> the keys it accepts besides ``name``, ``learning_rate``, ``warmup_epoch``.
LR_NAMES: dict[str, tuple[str, ...]] = {
    "Cosine": (),
    "Linear": ("end_lr", "power"),
    "Piecewise": ("decay_epochs", "values"),
    "MultiStepDecay": ("milestones", "gamma"),
    "Step": ("step_size", "gamma"),
    "Const": (),
}
#: ``Global`` key -> our dotted key (copied as is; eval_batch_step is special).
GLOBAL_KEYS = {
    "epoch_num": "schedule.epochs",
    "print_batch_step": "train.log_every_steps",
    "eval_batch_step": "train.eval_every_steps",
    "character_dict_path": "task.options.character_dict_path",
    "max_text_length": "task.options.max_text_length",
    "use_space_char": "task.options.use_space_char",
}
#: ``Optimizer`` key -> our dotted key (``lr`` and ``regularizer`` are special).
OPTIMIZER_KEYS = {
    "beta1": "optim.beta1",
    "beta2": "optim.beta2",
    "epsilon": "optim.epsilon",
    "momentum": "optim.momentum",
    "clip_norm": "optim.grad_clip_norm",
    "clip_norm_global": "optim.grad_clip_norm",
    "weight_decay": "optim.weight_decay",
}
#: PaddleOCR AdamW's exemptions from weight decay (``optim.no_decay``).
NO_DECAY_KEYS = ("no_weight_decay_name", "one_dim_param_no_weight_decay")
_DATA_SECTIONS = ("Train", "Eval")
_MODEL_SECTIONS = ("Architecture", "Loss", "PostProcess", "Metric")
_DICT_KEYS = ("task.options.character_dict_path", "task.options.builtin_dict")
#: A ``character_dict_path`` under this prefix names a dictionary the paddleocr wheel ships.
PPOCR_UTILS = "ppocr/utils/"
#: Our keys that decide the same thing as a target (the user setting one blocks the other).
_GROUPS = {
    "schedule.epochs": ("schedule.epochs", "schedule.total_steps"),
    "schedule.warmup": ("schedule.warmup",),
    "schedule.decay": ("schedule.decay", "schedule.stages"),
    "task.options.character_dict_path": _DICT_KEYS,
    "task.options.builtin_dict": _DICT_KEYS,
    "optim.grad_clip": ("optim.grad_clip", "optim.grad_clip_norm"),  # a norm of ours keeps our kind too
}


def _has(data: dict[str, Any], dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return  # the user wrote a non-mapping there; validation names it
    node[last] = value


class _Writer:
    """Fills our keys from PaddleOCR values unless the user set the key's group; records what it did."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.user = copy.deepcopy(data)

    def allowed(self, key: str, source: str) -> bool:
        taken = [k for k in _GROUPS.get(key, (key,)) if _has(self.user, k)]
        if taken:
            log.warning("%s ignored: %s is set in our own section and wins", source, taken[0])
        return not taken

    def set(self, key: str, value: Any, source: str) -> None:
        if self.allowed(key, source):
            _put(self.data, key, value)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _check_keys(section: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(
                f"{where}.{key}: not a supported PaddleOCR key here{suggest(key, known)} "
                f"(supported: {', '.join(known)})"
            )


def _step_values(lr: dict[str, Any], epoch_num: Any) -> tuple[list[float], list[float]]:
    """(milestones in epochs, LRs) of PaddleOCR's MultiStepDecay / Step: ``lr * gamma**i`` after the
    i-th milestone (Paddle's formula); Step's milestones are every ``step_size`` epochs of the run."""
    name = lr["name"]
    if "learning_rate" not in lr:
        raise ConfigError(f"Optimizer.lr.learning_rate: required for name {name}")
    base = _number(lr["learning_rate"], "Optimizer.lr.learning_rate")
    gamma = _number(lr.get("gamma", 0.1), "Optimizer.lr.gamma")
    if name == "MultiStepDecay":
        milestones = [_number(m, "Optimizer.lr.milestones") for m in lr.get("milestones") or []]
    else:
        size = _number(lr.get("step_size", 0), "Optimizer.lr.step_size")
        if size <= 0 or epoch_num is None:
            raise ConfigError(
                "Optimizer.lr: Step needs step_size > 0 and Global.epoch_num (the run's length)"
            )
        count = int(_number(epoch_num, "Global.epoch_num") // size)
        milestones = [k * size for k in range(1, count + 1) if k * size < epoch_num]
    return milestones, [base * gamma**i for i in range(len(milestones) + 1)]


def _piecewise(lr: dict[str, Any], w: _Writer, epoch_num: Any = None) -> None:
    if lr["name"] == "Piecewise":
        epochs, values = lr.get("decay_epochs", []), lr.get("values", [])
    else:
        epochs, values = _step_values(lr, epoch_num)
    if not isinstance(epochs, list) or not isinstance(values, list) or len(values) != len(epochs) + 1:
        raise ConfigError("Optimizer.lr: Piecewise needs decay_epochs and one more value in values")
    bounds = [0] + [_number(e, "Optimizer.lr.decay_epochs") for e in epochs]
    if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
        raise ConfigError(f"Optimizer.lr: milestones must be positive and increasing, got {epochs}")
    stages: list[dict[str, Any]] = []
    for i, value in enumerate(values):
        stage: dict[str, Any] = {"decay": {"kind": "piecewise", "boundaries": [], "values": [value]}}
        if i < len(epochs):
            stage["epochs"] = bounds[i + 1] - bounds[i]
        stages.append(stage)
    w.set("schedule.base_lr", _number(values[0], "Optimizer.lr.values[0]"), "Optimizer.lr.values[0]")
    if w.allowed("schedule.decay", f"Optimizer.lr.name={lr['name']}"):
        _put(w.data, "schedule.stages", stages)


def _lr(lr: Any, w: _Writer, epoch_num: Any = None) -> None:
    if not isinstance(lr, dict):
        raise ConfigError(f"Optimizer.lr: expected a mapping, got {lr!r}")
    name = lr.get("name", "Const")
    if name not in LR_NAMES:
        raise ConfigError(
            f"Optimizer.lr.name: {name!r} is not mapped{suggest(str(name), LR_NAMES)} "
            f"(supported: {', '.join(LR_NAMES)}; or write our schedule: section)"
        )
    _check_keys(lr, ("name", "learning_rate", "warmup_epoch") + LR_NAMES[name], "Optimizer.lr")
    warmup = _number(lr.get("warmup_epoch", 0), "Optimizer.lr.warmup_epoch")
    if warmup > 0:
        w.set(
            "schedule.warmup",
            {
                "kind": "linear",
                "epochs": warmup,
                "start_lr": 0.0,
                "epochs_rounding": "nearest_even",
                "start_lr_lint": False,
            },
            "Optimizer.lr.warmup_epoch",
        )
    else:
        w.set("schedule.warmup", {"kind": "none"}, "Optimizer.lr.warmup_epoch")
    if name in ("Piecewise", "MultiStepDecay", "Step"):  # constant stages counted from the warmup's end
        _piecewise({**lr, "name": name}, w, epoch_num)
        return
    if "learning_rate" not in lr:
        raise ConfigError(f"Optimizer.lr.learning_rate: required for name {name}")
    w.set(
        "schedule.base_lr",
        _number(lr["learning_rate"], "Optimizer.lr.learning_rate"),
        "Optimizer.lr.learning_rate",
    )
    decay: dict[str, Any] = {"kind": "constant"}
    if name == "Cosine":  # PaddleOCR: CosineAnnealingDecay(T_max = the whole run) after the warmup
        decay = {"kind": "cosine", "min_lr": 0.0, "period": "run"}
    elif name == "Linear":  # PolynomialDecay(decay_steps = the whole run) after the warmup
        power = _number(lr.get("power", 1.0), "Optimizer.lr.power")
        decay = {
            "kind": "polynomial",
            "power": power,
            "end_lr": _number(lr.get("end_lr", 0.0), "Optimizer.lr.end_lr"),
            "period": "run",
        }
    w.set("schedule.decay", decay, f"Optimizer.lr.name={name}")


def _glob_substring(name: str) -> str:
    """The fnmatch pattern of "contains ``name``" (``*``, ``?`` and ``[`` taken literally)."""
    return "*" + "".join(f"[{c}]" if c in "*?[" else c for c in name) + "*"


def _no_decay(opt: dict[str, Any], w: _Writer) -> None:
    """PaddleOCR's AdamW: ``no_weight_decay_name`` is space-separated substrings of structured names."""
    if opt.get("one_dim_param_no_weight_decay"):
        raise ConfigError(
            "Optimizer.one_dim_param_no_weight_decay: not supported (optim.no_decay selects by name, not shape)",
            hint="list those parameters' names in optim.no_decay",
        )
    names = opt.get("no_weight_decay_name")
    if names is None:
        return
    if not isinstance(names, str):
        raise ConfigError(f"Optimizer.no_weight_decay_name: expected space-separated names, got {names!r}")
    w.set("optim.no_decay", [_glob_substring(n) for n in names.split()], "Optimizer.no_weight_decay_name")


def _optimizer(opt: Any, w: _Writer, epoch_num: Any = None) -> None:
    if not isinstance(opt, dict):
        raise ConfigError(f"Optimizer: expected a mapping, got {opt!r}")
    _check_keys(opt, ("name", "lr", "regularizer", *NO_DECAY_KEYS) + tuple(OPTIMIZER_KEYS), "Optimizer")
    _no_decay(opt, w)
    if "name" in opt:
        if opt["name"] not in OPTIMIZERS:
            raise ConfigError(f"Optimizer.name: {opt['name']!r} is not one of {', '.join(OPTIMIZERS)}")
        w.set("optim.name", OPTIMIZERS[opt["name"]], "Optimizer.name")
    for key, target in OPTIMIZER_KEYS.items():
        if key in opt and not (key == "clip_norm_global" and "clip_norm" in opt):  # PaddleOCR: clip_norm wins
            w.set(target, opt[key], f"Optimizer.{key}")
    if "clip_norm" in opt or "clip_norm_global" in opt:
        kind = "per_tensor" if "clip_norm" in opt else "global"
        w.set(
            "optim.grad_clip",
            kind,
            "Optimizer.clip_norm" if "clip_norm" in opt else "Optimizer.clip_norm_global",
        )
    reg = opt.get("regularizer")
    if reg is not None:
        if not isinstance(reg, dict) or reg.get("name") != "L2":
            raise ConfigError(
                f"Optimizer.regularizer: only {{name: L2, factor: F}} is supported, got {reg!r}"
            )
        w.set(
            "optim.weight_decay",
            _number(reg.get("factor", 0.0), "Optimizer.regularizer.factor"),
            "Optimizer.regularizer.factor",
        )
    if "lr" in opt:
        _lr(opt["lr"], w, epoch_num)


def _global(section: Any, w: _Writer) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"Global: expected a mapping, got {section!r}")
    ignored = sorted(k for k in section if k not in GLOBAL_KEYS and k not in INIT_KEYS)
    if ignored:
        log.warning("Global keys with no meaning here are ignored: %s", ", ".join(ignored))
    for key, target in GLOBAL_KEYS.items():
        if key not in section:
            continue
        value = section[key]
        if key == "eval_batch_step" and isinstance(value, list):  # PaddleOCR: [start_step, every]
            if len(value) != 2:
                raise ConfigError(
                    f"Global.eval_batch_step: expected [start, every] or a number, got {value!r}"
                )
            value = value[1]
        if key == "character_dict_path":
            target, value = _dict_target(value)
        w.set(target, value, f"Global.{key}")
    apply_init(section, w)


def _dict_target(value: Any) -> tuple[str, Any]:
    """``ppocr/utils/<name>`` (PaddleOCR-relative, no such local file) -> the wheel's dictionary."""
    text = str(value)
    if text.startswith(PPOCR_UTILS) and not Path(text).is_file():
        return "task.options.builtin_dict", text[len(PPOCR_UTILS) :]
    return "task.options.character_dict_path", value


def _model_blocks(data: dict[str, Any], w: _Writer) -> None:
    """Architecture / Loss / PostProcess / Metric (see :mod:`app.tasks.ocr.translate_arch`)."""
    node: Any = w.user
    for part in ("task", "options", "model", "algorithm"):
        node = node.get(part) if isinstance(node, dict) else None
    ours = {"svtr_lcnet": "SVTR_LCNet", "svtr_mv1e": translate_arch.V3}
    algorithm = ours.get(node) if isinstance(node, str) else None
    if data.get("Architecture") is not None:
        algorithm, items = translate_arch.architecture(data["Architecture"])
        for key, value, source in items:
            w.set(key, value, source)
    if data.get("Loss") is not None:
        for key, value, source in translate_arch.loss(data["Loss"], algorithm):
            w.set(key, value, source)
    if data.get("PostProcess") is not None:
        translate_arch.postprocess(data["PostProcess"])
    if data.get("Metric") is not None:
        for key, value, source in translate_arch.metric(data["Metric"]):
            w.set(key, value, source)


def _data_sections(data: dict[str, Any], w: _Writer) -> None:
    """Train / Eval (see :mod:`app.tasks.ocr.translate_data`); both must name the same data_dir."""
    items = [item for name in _DATA_SECTIONS if name in data for item in dataset_items(data[name], name)]
    dirs = {value for key, value, _ in items if key == "task.options.data_dir"}
    if len(dirs) > 1:
        raise ConfigError(
            f"Train.dataset.data_dir / Eval.dataset.data_dir: one data_dir is supported, got {sorted(dirs)}",
            hint="put both label files' images under one folder, or use absolute image paths",
        )
    for key, value, source in items:
        w.set(key, value, source)
    for name in _DATA_SECTIONS:
        w.data.pop(name, None)


def translate(data: dict[str, Any]) -> dict[str, Any]:
    """The raw config with ``Global`` / ``Optimizer`` folded into our sections (a new dict)."""
    out = copy.deepcopy(data)
    blocks = {name: out.pop(name) for name in _MODEL_SECTIONS if name in out}
    pp_global, pp_optimizer = out.pop("Global", None), out.pop("Optimizer", None)
    writer = _Writer(out)
    if pp_global is not None:
        _global(pp_global, writer)
    if pp_optimizer is not None:
        epoch_num = pp_global.get("epoch_num") if isinstance(pp_global, dict) else None
        _optimizer(pp_optimizer, writer, epoch_num)
    _model_blocks(blocks, writer)
    _data_sections(data, writer)
    if not _has(out, "train.metric"):  # the default "accuracy" is not an OCR metric
        _put(out, "train.metric", "word_accuracy")
    return out
