"""The task registries as plain data: which module builds each task kind, and which rewrites its config.

Kept apart from :mod:`app.tasks.base` (the task protocol) so that the config schema can check
``task.kind`` and the loader can run a translator without importing any task code, and without an
import circle between :mod:`app.config.schema` and :mod:`app.tasks.base`.
"""

from __future__ import annotations

import importlib
from typing import Any

from app.errors import ConfigError

__all__ = [
    "TASKS",
    "TASK_OPTIONS",
    "CONFIG_TRANSLATORS",
    "PADDLENLP_NO_DECAY",
    "TASK_NO_DECAY",
    "resolve",
    "translate_config",
]

#: name -> "module:factory"; the factory takes the task options dict, ``seed`` and ``allow_pickle``
#: (``init.allow_pickle``: whether a file the toolkit would unpickle may be loaded) and returns a Task.
TASKS: dict[str, str] = {
    "digits": "app.tasks.digits:DigitsTask",
    "ocr_rec": "app.tasks.ocr.task:OcrRecTask",
    "detection": "app.tasks.det.task:DetectionTask",
    "nlp_seq_cls": "app.tasks.nlp.task:SeqClsTask",
    "nlp_token_cls": "app.tasks.nlp.task:TokenClsTask",
}

#: name -> "module:Class" of the typed ``task.options`` dataclass, checked when the config loads (so a bad
#: option fails `warmstart config` too, not only when the task is built). These modules must not import
#: Paddle: loading a config must not replace the SIGTERM handler.
TASK_OPTIONS: dict[str, str] = {
    "digits": "app.tasks.digits_options:DigitsOptions",
    "ocr_rec": "app.tasks.ocr.options:OcrRecOptions",
    "detection": "app.tasks.det.options:DetectionOptions",
    "nlp_seq_cls": "app.tasks.nlp.options:SeqClsOptions",
    "nlp_token_cls": "app.tasks.nlp.options:TokenClsOptions",
}

#: PaddleNLP's Trainer rule (``create_optimizer``): no weight decay for a parameter whose structured name
#: (``named_parameters()``) contains ``bias`` or ``norm`` (case-sensitive substrings), as glob patterns.
PADDLENLP_NO_DECAY: tuple[str, ...] = ("*bias*", "*norm*")

#: name -> default of ``optim.no_decay`` when the config leaves it unset. Tasks not listed decay every
#: parameter (a parameter's own Paddle ``ParamAttr`` regularizer, as ppdet models set on BatchNorm, still
#: wins with the L2 optimizers, as in ppdet and PaddleOCR).
TASK_NO_DECAY: dict[str, tuple[str, ...]] = {
    "nlp_seq_cls": PADDLENLP_NO_DECAY,
    "nlp_token_cls": PADDLENLP_NO_DECAY,
}

#: name -> "module:function"; ``function(data: dict) -> dict`` rewrites the raw (merged YAML/env/--set)
#: config before validation, e.g. to accept a toolkit's own keys (PaddleOCR ``Optimizer.lr``,
#: PaddleDetection ``LearningRate``, PaddleNLP ``TrainingArguments`` names) and map them onto ours.
#: It must not override keys the user set in our own sections.
CONFIG_TRANSLATORS: dict[str, str] = {
    "ocr_rec": "app.tasks.ocr.translate:translate",
    "detection": "app.tasks.det.translate:translate",
    "nlp_seq_cls": "app.tasks.nlp.translate:translate",
    "nlp_token_cls": "app.tasks.nlp.translate:translate",
}


def resolve(target: str) -> Any:
    """The object named by ``"module:attr"`` (imports only that module)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def translate_config(data: dict[str, Any]) -> dict[str, Any]:
    """Apply the task's translator, if it has one (only that task's module is imported)."""
    task = data.get("task")
    kind = task.get("kind") if isinstance(task, dict) else None
    target = CONFIG_TRANSLATORS.get(kind) if isinstance(kind, str) else None
    if not target:
        return data
    try:
        return resolve(target)(data)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # A translator reads raw, unvalidated input: a value of the wrong shape is a config error.
        raise ConfigError(
            f"task.kind {kind}: a {kind} section of the config has an unexpected shape "
            f"({type(exc).__name__}: {str(exc)[:120]})",
            hint="check the types of the toolkit sections you set (mappings, lists, numbers)",
        ) from None
