"""Load a user-supplied warmup (``warmup.kind: custom``) named as ``"module:attr"``.

Two shapes are accepted:

* a function ``f(step, warmup_steps, start_lr, base_lr) -> lr`` called for steps ``0 .. W-1``;
* a Paddle ``LRScheduler`` subclass, built as ``cls(learning_rate=base_lr, warmup_steps=W,
  start_lr=start_lr)``; its ``()`` value after ``t`` steps is the LR at step ``t``.

Either way the schedule switches to the decay at step ``W``. Import or call failures are ConfigErrors
naming ``schedule.warmup.callable``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
from typing import Any

from paddle.optimizer.lr import LRScheduler

from app.errors import ConfigError
from app.schedule.curves import Curve

__all__ = ["load_object", "custom_warmup"]

log = logging.getLogger(__name__)

FIELD = "schedule.warmup.callable"


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted) and return the object."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{FIELD} ({spec!r}): cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{FIELD} ({spec!r}): module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _function_curve(spec: str, func: Any, steps: int, start_lr: float, base_lr: float) -> Curve:
    def curve(t: int) -> float:
        return float(func(t, steps, start_lr, base_lr))

    try:
        first = curve(0)
    except Exception as exc:  # a user function: report any failure as a config problem
        raise ConfigError(
            f"{FIELD} ({spec!r}): calling it with (0, {steps}, {start_lr}, {base_lr}) failed: {exc}"
        ) from None
    if not math.isfinite(first) or first < 0:
        raise ConfigError(f"{FIELD} ({spec!r}): returned {first} at step 0; expected a finite LR >= 0")
    return curve


def _scheduler_hook(spec: str, cls: type, steps: int, start_lr: float, base_lr: float) -> LRScheduler:
    try:
        hook = cls(learning_rate=base_lr, warmup_steps=steps, start_lr=start_lr)
    except Exception as exc:  # a user class: report any failure as a config problem
        raise ConfigError(
            f"{FIELD} ({spec!r}): {cls.__name__}(learning_rate=..., warmup_steps=..., start_lr=...) failed: {exc}"
        ) from None
    return hook


def custom_warmup(
    spec: str, steps: int, start_lr: float, base_lr: float
) -> tuple[Curve | None, LRScheduler | None]:
    """``(curve, None)`` for a function, ``(None, scheduler)`` for an ``LRScheduler`` subclass."""
    obj = load_object(spec)
    if inspect.isclass(obj) and issubclass(obj, LRScheduler):
        return None, _scheduler_hook(spec, obj, steps, start_lr, base_lr)
    if callable(obj):
        return _function_curve(spec, obj, steps, start_lr, base_lr), None
    raise ConfigError(
        f"{FIELD} ({spec!r}): expected a function or an LRScheduler subclass, got {type(obj).__name__}"
    )
