"""Building the pieces the loop needs: process group, optimizer, freeze stages (mixed precision:
:mod:`app.train.amp`).

``Dist`` and ``init_dist`` live in :mod:`app.train.dist` and are re-exported here.
"""

from __future__ import annotations

import fnmatch
import logging

import paddle

from app.config.schema import FreezeStage, OptimConfig
from app.errors import ConfigError
from app.train.dist import Dist, init_dist

__all__ = [
    "Dist",
    "init_dist",
    "build_optimizer",
    "decayed_names",
    "check_freeze",
    "apply_freeze",
    "trainable_names",
]

log = logging.getLogger(__name__)


def decayed_names(patterns: list[str] | None, model: paddle.nn.Layer) -> list[str]:
    """Structured names of the parameters ``weight_decay`` applies to: those no ``patterns`` glob matches.

    A pattern that matches no parameter is a :class:`ConfigError` (a typo would silently decay everything).
    """
    names = [n for n, _ in model.named_parameters()]
    for i, pat in enumerate(patterns or ()):
        if not any(fnmatch.fnmatchcase(n, pat) for n in names):
            raise ConfigError(
                f"optim.no_decay[{i}]: {pat!r} matches no parameter "
                f"(parameters look like: {', '.join(names[:4])})",
                hint="patterns are case-sensitive globs on the whole name, e.g. '*bias*'",
            )
    return [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns or ())]


def _exempt(cfg: OptimConfig, model: paddle.nn.Layer) -> dict[str, paddle.Tensor]:
    """Parameters (by structured name) that ``optim.no_decay`` exempts from weight decay."""
    decayed = set(decayed_names(cfg.no_decay, model))
    return {n: p for n, p in model.named_parameters() if n not in decayed}


def build_optimizer(
    cfg: OptimConfig, lr: paddle.optimizer.lr.LRScheduler, model: paddle.nn.Layer
) -> paddle.optimizer.Optimizer:
    """The optimizer; ``optim.no_decay`` parameters get no weight decay.

    AdamW skips them through ``apply_decay_param_fun`` (keyed by ``param.name``, as PaddleNLP's Trainer
    does); the L2 optimizers give them their own zero ``L2Decay``, which Paddle applies instead of the
    optimizer's (a parameter's own ``ParamAttr`` regularizer otherwise keeps winning, as in ppdet).
    """
    clip_cls = paddle.nn.ClipGradByNorm if cfg.grad_clip == "per_tensor" else paddle.nn.ClipGradByGlobalNorm
    clip = clip_cls(cfg.grad_clip_norm) if cfg.grad_clip_norm else None
    params = model.parameters()
    exempt = _exempt(cfg, model)
    if exempt:
        log.info("weight decay: %d of %d parameters exempt (optim.no_decay)", len(exempt), len(params))
    if cfg.name == "adamw":
        skip = frozenset(p.name for p in exempt.values())
        return paddle.optimizer.AdamW(
            learning_rate=lr, parameters=params, beta1=cfg.beta1, beta2=cfg.beta2,
            epsilon=cfg.epsilon, weight_decay=cfg.weight_decay, grad_clip=clip,
            apply_decay_param_fun=(lambda name: name not in skip) if skip else None,
        )  # fmt: skip
    if cfg.weight_decay:
        for param in exempt.values():
            param.regularizer = paddle.regularizer.L2Decay(0.0)
    if cfg.name == "adam":
        return paddle.optimizer.Adam(
            learning_rate=lr, parameters=params, beta1=cfg.beta1, beta2=cfg.beta2,
            epsilon=cfg.epsilon, weight_decay=cfg.weight_decay or None, grad_clip=clip,
        )  # fmt: skip
    if cfg.name == "momentum":
        return paddle.optimizer.Momentum(
            learning_rate=lr, momentum=cfg.momentum, parameters=params,
            weight_decay=cfg.weight_decay or None, grad_clip=clip,
        )  # fmt: skip
    return paddle.optimizer.SGD(
        learning_rate=lr, parameters=params, weight_decay=cfg.weight_decay or None, grad_clip=clip
    )


def check_freeze(stages: list[FreezeStage], model: paddle.nn.Layer, total_steps: int) -> None:
    names = [n for n, _ in model.named_parameters()]
    for i, stage in enumerate(stages):
        if stage.until_step <= 0 or stage.until_step >= total_steps:
            raise ConfigError(
                f"freeze[{i}].until_step: must be within (0, {total_steps}) total steps, got {stage.until_step}"
            )
        for pat in stage.patterns:
            if not any(fnmatch.fnmatchcase(n, pat) for n in names):
                raise ConfigError(
                    f"freeze[{i}].patterns: {pat!r} matches no parameter "
                    f"(parameters look like: {', '.join(names[:4])})"
                )


def trainable_names(model: paddle.nn.Layer) -> frozenset[str]:
    """Parameters that train at all (BatchNorm running statistics, for one, never do)."""
    return frozenset(n for n, p in model.named_parameters() if not p.stop_gradient)


def apply_freeze(
    stages: list[FreezeStage], model: paddle.nn.Layer, step: int, trainable: frozenset[str]
) -> list[str]:
    """Set ``stop_gradient`` of the trainable parameters for this step; returns names unfrozen at it."""
    unfrozen: list[str] = []
    for name, param in model.named_parameters():
        if name not in trainable:
            continue
        frozen = any(
            step < s.until_step and any(fnmatch.fnmatchcase(name, p) for p in s.patterns) for s in stages
        )
        if param.stop_gradient and not frozen and any(s.until_step == step for s in stages):
            unfrozen.append(name)
        param.stop_gradient = frozen
    return unfrozen
