"""Translate a ppdet ``OptimizerBuilder`` onto our ``optim`` section; no key is dropped without a word.

Every key ppdet's ``OptimizerBuilder`` reads (and every key its ``optimizer:`` block passes on to the
Paddle optimizer) is mapped, refused with one line, or ignored with a warning and a reason (the same
lists are in docs/detection.md):

| ppdet | ours |
|---|---|
| ``optimizer.type`` Momentum / SGD / Adam / AdamW | ``optim.name`` (others are refused) |
| ``optimizer.momentum`` | ``optim.momentum`` |
| ``optimizer.beta1`` / ``beta2`` / ``epsilon`` | ``optim.beta1`` / ``beta2`` / ``epsilon`` |
| ``optimizer.weight_decay`` (AdamW) | ``optim.weight_decay`` (decoupled) |
| ``regularizer: {type: L2, factor}`` (not AdamW) | ``optim.weight_decay`` (L2) |
| ``optimizer.param_groups`` with ``weight_decay: 0`` | ``optim.no_decay`` (``*name*`` per substring) |
| ``clip_grad_by_norm`` | ``optim.grad_clip_norm`` |

Refused (they change the update and have no equivalent here): ``clip_grad_by_value``, ``use_nesterov:
true``, ``lazy_mode: true``, ``rescale_grad`` other than 1, ``param_groups`` entries with any other
setting (a per-group learning rate or weight decay), unknown ``OptimizerBuilder`` keys (ppdet itself
rejects them). Ignored with a warning: ``multi_precision`` and ``use_multi_tensor`` (precision and
kernels follow ``train.amp``), ``name``, an ``L1`` regularizer (no weight decay), a regularizer next to
AdamW (ppdet ignores it too), and any other ``optimizer`` key.
"""

from __future__ import annotations

import logging
from typing import Any

from app.errors import ConfigError

__all__ = ["translate_optimizer"]

log = logging.getLogger(__name__)

WHERE = "task.options.ppdet_config: OptimizerBuilder"
NAMES = {"Momentum": "momentum", "SGD": "sgd", "Adam": "adam", "AdamW": "adamw"}
BUILDER_KEYS = ("clip_grad_by_norm", "clip_grad_by_value", "regularizer", "optimizer")
#: optimizer key -> our optim key, per optimizer type.
MAPPED = {
    "Momentum": {"momentum": "momentum"},
    "SGD": {},
    "Adam": {"beta1": "beta1", "beta2": "beta2", "epsilon": "epsilon"},
    "AdamW": {"beta1": "beta1", "beta2": "beta2", "epsilon": "epsilon", "weight_decay": "weight_decay"},
}
#: optimizer key -> the value that changes nothing (anything else is refused).
NEUTRAL = {"use_nesterov": False, "lazy_mode": False, "rescale_grad": 1.0}
#: optimizer keys that do not change the math: ignored with this reason.
IGNORED = {
    "multi_precision": "precision follows train.amp",
    "use_multi_tensor": "a kernel choice; precision and results follow train.amp",
    "name": "a Paddle name prefix",
}


def _substring_glob(text: str) -> str:
    """The fnmatch pattern of "contains ``text``" (``*``, ``?`` and ``[`` taken literally), as ppdet's
    ``any(k in name for k in group["params"])``."""
    return "*" + "".join(f"[{c}]" if c in "*?[" else c for c in text) + "*"


def _param_groups(groups: Any) -> list[str]:
    """``optim.no_decay`` patterns for ppdet ``param_groups``; a group that does more is refused."""
    if not isinstance(groups, list):
        raise ConfigError(
            f"{WHERE}.optimizer.param_groups: expected a list of {{params: [...], ...}} mappings"
        )
    patterns: list[str] = []
    for i, group in enumerate(groups):
        where = f"{WHERE}.optimizer.param_groups[{i}]"
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise ConfigError(f"{where}: expected a mapping with a `params` list of name substrings")
        settings = {k: v for k, v in group.items() if k != "params"}
        if settings.keys() != {"weight_decay"} or float(settings["weight_decay"]) != 0.0:
            shown = ", ".join(f"{k}: {v!r}" for k, v in settings.items()) or "nothing"
            raise ConfigError(
                f"{where} sets {shown}; only groups that turn weight decay off "
                "(weight_decay: 0) are translated",
                hint="per-group learning rates and decays are not supported; set optim.no_decay for the "
                "no-decay part and train the rest with one LR",
            )
        patterns += [_substring_glob(str(p)) for p in group["params"]]
    return patterns


def _check_builder(builder: dict[str, Any]) -> None:
    unknown = [k for k in builder if k not in BUILDER_KEYS]
    if unknown:
        raise ConfigError(
            f"{WHERE}: unknown key(s) {', '.join(unknown)} (ppdet's OptimizerBuilder takes "
            f"{', '.join(BUILDER_KEYS)})"
        )
    if builder.get("clip_grad_by_value") is not None:
        raise ConfigError(
            f"{WHERE}.clip_grad_by_value: clipping each gradient element is not supported",
            hint="use optim.grad_clip_norm (global norm), or set clip_grad_by_value: null in "
            "task.options.overrides",
        )


def _optimizer_keys(kind: str, opt: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """Map the optimizer block's keys into ``out``; returns what no_decay patterns param_groups gave."""
    ignored: list[str] = []
    no_decay: list[str] = []
    for key, value in opt.items():
        if key in MAPPED[kind]:
            out[MAPPED[kind][key]] = float(value)
        elif key == "param_groups":
            no_decay = _param_groups(value)
        elif key in NEUTRAL:
            if value != NEUTRAL[key]:
                raise ConfigError(
                    f"{WHERE}.optimizer.{key}: {value!r} is not supported (only {NEUTRAL[key]!r})",
                    hint=f"remove it, or set it to {NEUTRAL[key]!r} in task.options.overrides",
                )
        elif key in IGNORED:
            ignored.append(f"{key} ({IGNORED[key]})")
        else:
            ignored.append(f"{key} (not translated for {kind})")
    if ignored:
        log.warning("%s.optimizer: keys not used by warmstart: %s", WHERE, "; ".join(ignored))
    return no_decay


def _regularizer(kind: str, builder: dict[str, Any], out: dict[str, Any]) -> None:
    reg = builder.get("regularizer", {"type": "L2", "factor": 0.0001})  # ppdet's default
    if not reg or reg == "None":
        if kind != "AdamW":
            out["weight_decay"] = 0.0
        return
    if kind == "AdamW":
        if "regularizer" in builder:
            log.warning("%s.regularizer %r is ignored with AdamW (as ppdet does)", WHERE, reg)
        return
    if isinstance(reg, dict) and reg.get("type") == "L2":
        extra = [k for k in reg if k not in ("type", "factor")]
        if extra:
            log.warning("%s.regularizer: keys not used (ppdet reads only type and factor): %s", WHERE, extra)
        out["weight_decay"] = float(reg.get("factor", 0.0))
    else:
        log.warning("%s.regularizer %r is not translated; no weight decay", WHERE, reg)


def translate_optimizer(builder: dict[str, Any]) -> dict[str, Any]:
    """Our ``optim`` values for a ppdet ``OptimizerBuilder`` mapping (see the module docstring)."""
    _check_builder(builder)
    opt = dict(builder.get("optimizer") or {"type": "Momentum", "momentum": 0.9})
    kind = opt.pop("type", "Momentum")
    if kind not in NAMES:
        raise ConfigError(
            f"{WHERE}.optimizer.type {kind!r} is not translated (supported: {', '.join(NAMES)})"
        )
    out: dict[str, Any] = {"name": NAMES[kind]}
    if kind == "Momentum":
        out["momentum"] = 0.9  # Paddle's default when the block leaves it out
    if kind == "AdamW":
        out["weight_decay"] = 0.01  # Paddle's AdamW default
    no_decay = _optimizer_keys(kind, opt, out)
    _regularizer(kind, builder, out)
    if no_decay:
        out["no_decay"] = no_decay
    if builder.get("clip_grad_by_norm") is not None:
        out["grad_clip_norm"] = float(builder["clip_grad_by_norm"])
    return out
