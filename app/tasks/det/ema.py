"""The model EMA of a ppdet config (``use_ema``), saved in every checkpoint and restored exactly.

ppdet's ``ModelEMA`` keeps the running averages and a step counter; the bias-corrected weights are what
ppdet evaluates and exports. Its ``apply()`` also advances a cycle counter, so the corrected weights are
computed here without that side effect.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import paddle

from app.errors import CheckpointError

__all__ = ["Ema"]

log = logging.getLogger(__name__)


class Ema:
    def __init__(self, model: paddle.nn.Layer, cfg: Any) -> None:
        from ppdet.optimizer import ModelEMA

        self.ema = ModelEMA(
            model,
            decay=cfg.get("ema_decay", 0.9998),
            ema_decay_type=cfg.get("ema_decay_type", "threshold"),
            cycle_epoch=cfg.get("cycle_epoch", -1),
            ema_black_list=cfg.get("ema_black_list", None),
            ema_filter_no_grad=cfg.get("ema_filter_no_grad", False),
        )
        self.ema._decay = 0.0

    def update(self, model: paddle.nn.Layer) -> None:
        self.ema.update(model)

    def weights(self) -> dict[str, paddle.Tensor]:
        """Bias-corrected averages, as ppdet evaluates them (the raw state before the first update)."""
        ema = self.ema
        if ema.step == 0:
            return dict(ema.state_dict)
        out = {}
        for k, v in ema.state_dict.items():
            if k not in ema.ema_black_list and ema.ema_decay_type != "exponential":
                v = v / (1 - ema._decay**ema.step)
            out[k] = v
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: v.numpy() for k, v in self.ema.state_dict.items() if k not in self.ema.ema_black_list}
        out["@step"] = np.array(self.ema.step, dtype=np.int64)
        out["@decay"] = np.array(self.ema._decay, dtype=np.float64)
        return out

    def load(self, arrays: dict[str, np.ndarray], source: str) -> None:
        own = {k: v for k, v in self.ema.state_dict.items() if k not in self.ema.ema_black_list}
        missing = sorted(set(own) - set(arrays)) + [k for k in ("@step", "@decay") if k not in arrays]
        if missing:
            raise CheckpointError(f"EMA tensors in {source} are missing {', '.join(missing[:5])}")
        for k, v in own.items():
            if tuple(arrays[k].shape) != tuple(v.shape):
                raise CheckpointError(
                    f"EMA tensor {k} in {source} has shape {arrays[k].shape}, model {v.shape}"
                )
            self.ema.state_dict[k] = paddle.to_tensor(arrays[k].astype(arrays[k].dtype))
        self.ema.step = int(arrays["@step"])
        self.ema._decay = float(arrays["@decay"])
