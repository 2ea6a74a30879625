"""Say what becomes of every top-level key of a user's ppdet config: used, translated, or ignored.

No key is dropped without a word. Each load logs one INFO line listing the keys Warmstart uses and
translates, and one WARNING line naming every key it ignores with what to use instead. Model sections
(any name ppdet registered, e.g. ``PicoDet``, ``LCNet``) and the global keys ppdet's modules share
(``num_classes``, ``norm_type``, ``width_mult``, ...) are read by ppdet when the architecture is built.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["USED", "TRANSLATED", "IGNORED", "ANCHORS", "classify_keys", "report_keys"]

log = logging.getLogger(__name__)

WHERE = "task.options.ppdet_config"

#: Read by the detection task itself (data, transforms, metric, EMA, export).
USED = {
    "architecture": "the model",
    "TrainDataset": "training data",
    "EvalDataset": "evaluation data",
    "TestDataset": "the label list of `warmstart export`",
    "TrainReader": "training transforms",
    "EvalReader": "evaluation transforms",
    "TestReader": "export input shape and pre-processing",
    "metric": "COCO or VOC evaluation",
    "map_type": "VOC mAP type",
    "use_ema": "EMA",
    "ema_decay": "EMA",
    "ema_decay_type": "EMA",
    "ema_black_list": "EMA",
    "ema_filter_no_grad": "EMA",
    "cycle_epoch": "EMA",
}
#: Turned into our own sections before validation (app/tasks/det/translate.py).
TRANSLATED = {
    "LearningRate": "schedule",
    "OptimizerBuilder": "optim",
    "epoch": "schedule.epochs",
    "pretrain_weights": "init.from (partial, match ppdet)",
    "worker_num": "train.data_workers",
}
#: Read by ppdet's own Trainer or tools only; what to use instead.
IGNORED = {
    "use_gpu": "the device is the one the Paddle build runs on (CUDA_VISIBLE_DEVICES)",
    "use_xpu": "the device is the one the Paddle build runs on",
    "use_npu": "the device is the one the Paddle build runs on",
    "use_mlu": "the device is the one the Paddle build runs on",
    "use_gcu": "the device is the one the Paddle build runs on",
    "log_iter": "train.log_every_steps",
    "save_dir": "run.dir and checkpoint.uri",
    "snapshot_epoch": "checkpoint.every_steps and train.eval_every_steps",
    "print_flops": "not available",
    "print_params": "the log states the parameter count",
    "find_unused_parameters": "not needed: one process per device, no DataParallel",
    "amp": "train.amp",
    "amp_level": "train.amp",
    "use_amp": "train.amp",
    "custom_black_list": "train.amp keeps Paddle's default lists",
    "custom_white_list": "train.amp keeps Paddle's default lists",
    "use_vdl": "log.jsonl (warmstart plot)",
    "vdl_log_dir": "log.jsonl (warmstart plot)",
    "use_wandb": "log.jsonl (warmstart plot)",
    "export": "warmstart export always includes post-processing and NMS",
    "classwise": "evaluation reports overall mAP only",
    "save_prediction_only": "evaluation always computes the metric",
    "output_eval": "evaluation writes to a temporary folder",
    "weights": "`warmstart export --from FILE` (a .pdparams needs init.allow_pickle)",
}
#: Top-level values that only exist to be referenced by YAML anchors (``&eval_size``) elsewhere.
ANCHORS = ("eval_height", "eval_width", "input_height", "input_width", "train_height", "train_width")
#: Added by ppdet's loader itself.
_INTERNAL = ("filename",)


def _ppdet_keys() -> tuple[set[str], set[str]]:
    """(registered module names, global keys the modules share), from ppdet's registry."""
    import ppdet.core.workspace as ws
    from ppdet.core.config.schema import SchemaDict, SharedConfig

    modules, shared = set(), set()
    for name, value in ws.global_config.items():
        if isinstance(value, SchemaDict):
            modules.add(name)
            for field in getattr(value, "shared", None) or []:
                default = value.schema[field].default
                if isinstance(default, SharedConfig):
                    shared.add(default.key)
    return modules, shared


def classify_keys(keys: list[str]) -> dict[str, list[str]]:
    """Each top-level key in one group: used, translated, model, anchor, ignored or unknown."""
    modules, shared = _ppdet_keys()
    groups: dict[str, list[str]] = {
        g: [] for g in ("used", "translated", "model", "anchor", "ignored", "unknown")
    }
    for key in keys:
        if key in USED:
            groups["used"].append(key)
        elif key in TRANSLATED:
            groups["translated"].append(key)
        elif key in IGNORED:
            groups["ignored"].append(key)
        elif key in modules or key in shared:
            groups["model"].append(key)
        elif key in ANCHORS or key in _INTERNAL:
            groups["anchor"].append(key)
        else:
            groups["unknown"].append(key)
    return groups


def report_keys(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, list[str]]:
    """Log what becomes of each top-level key of the merged config (files and task.options.overrides)."""
    keys = list(dict.fromkeys([*raw, *overrides]))
    groups = classify_keys(keys)
    log.info(
        "%s: used: %s; translated: %s; read by ppdet's modules: %s",
        WHERE,
        ", ".join(groups["used"]) or "-",
        ", ".join(f"{k} -> {TRANSLATED[k]}" for k in groups["translated"]) or "-",
        ", ".join(groups["model"]) or "-",
    )
    ignored = [f"{k} ({IGNORED[k]})" for k in groups["ignored"]]
    ignored += [f"{k} (not a key ppdet or Warmstart reads)" for k in groups["unknown"]]
    if ignored:
        log.warning("%s: keys not used by warmstart: %s", WHERE, "; ".join(ignored))
    if raw.get("weights") or overrides.get("weights"):
        _weights_warning(str(overrides.get("weights") or raw["weights"]))
    return groups


def _weights_warning(value: str) -> None:
    file = value if value.endswith(".pdparams") else value + ".pdparams"
    log.warning(
        "ppdet config key weights=%s is not what warmstart evaluates or exports (that is the run's own "
        "checkpoint, or --from); to export that file run `warmstart export --from %s --set "
        "init.allow_pickle=true` (a .pdparams is a pickle)",
        value, file,
    )  # fmt: skip
