"""Mixed precision: what ``train.amp`` resolves to on this device, and the fp16 loss scaler.

The rule (:func:`resolve`, a pure function of the setting and a :class:`Device`, documented in docs/gpu.md):

=========  ===========================================  ==============================================
setting    CUDA GPU                                     anything else (CPU)
=========  ===========================================  ==============================================
``off``    float32                                      float32
``auto``   fp16 on compute capability >= 7.0, else      float32
           float32
``fp16``   fp16 (with loss scaling) on >= 7.0; below:   float32, with one warning
           float32, with one warning
``bf16``   bf16 on >= 8.0 with CUDA >= 11; below:       float32, with one warning
           float32, with one warning
=========  ===========================================  ==============================================

An explicit ``fp16``/``bf16`` the device cannot run falls back to float32 with a warning instead of
stopping: float32 is the reference precision (nothing is lost), and a job moved between GPU generations or
to a CPU for debugging keeps running. Paddle 2.6 itself would do the same silently (``auto_cast`` and
``GradScaler`` turn themselves off outside CUDA/XPU/custom devices, with a ``UserWarning``); resolving it
here makes the precision that actually runs one logged line. fp16 gets Paddle's dynamic loss scaling
(:func:`make_scaler`); its state is saved in every checkpoint (``trainer_state.json`` ``amp_scaler``) and
restored on resume, so the scale and its step counters continue exactly. bf16 needs no loss scaling.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Device",
    "AmpPlan",
    "probe_device",
    "resolve",
    "plan_for",
    "make_scaler",
    "restore_scaler",
    "INIT_LOSS_SCALING",
]

log = logging.getLogger(__name__)

#: fp16's initial loss scale (Paddle's default; PaddleNLP's Trainer uses the same).
INIT_LOSS_SCALING = 2.0**15
_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
#: The lowest compute capability Paddle runs each AMP dtype on (paddle.amp.auto_cast's own checks).
MIN_CAPABILITY = {"fp16": (7, 0), "bf16": (8, 0)}


@dataclass(frozen=True)
class Device:
    """Where this process trains: ``kind`` "gpu" (CUDA) or another Paddle place name ("cpu", ...)."""

    kind: str
    capability: tuple[int, int] | None = None  # CUDA compute capability (major, minor)
    cuda: str | None = None  # paddle.version.cuda(), e.g. "11.8"

    def text(self) -> str:
        if self.kind != "gpu" or self.capability is None:
            return self.kind
        return f"gpu (compute capability {self.capability[0]}.{self.capability[1]}, CUDA {self.cuda})"


@dataclass(frozen=True)
class AmpPlan:
    """What runs: ``dtype`` "float16"/"bfloat16" or None (float32); ``note`` says why, for the log."""

    dtype: str | None
    note: str
    fell_back: bool = False  # an explicit fp16/bf16 this device cannot run

    @property
    def loss_scaling(self) -> bool:
        return self.dtype == "float16"


def probe_device() -> Device:
    """The device Paddle trains on in this process."""
    import paddle

    place = paddle.device.get_device()
    if paddle.is_compiled_with_cuda() and place.startswith("gpu"):
        major, minor = paddle.device.cuda.get_device_capability()
        return Device("gpu", (int(major), int(minor)), str(paddle.version.cuda()))
    return Device(place.split(":")[0])


def _cuda_major(device: Device) -> int:
    try:
        return int(str(device.cuda).split(".")[0])
    except ValueError:
        return 0


def _supports(setting: str, device: Device) -> str | None:
    """None when ``device`` runs ``setting`` ("fp16"/"bf16"), else what is missing."""
    need = MIN_CAPABILITY[setting]
    if device.kind != "gpu" or device.capability is None:
        return f"{setting} needs a CUDA GPU (Paddle runs no mixed precision on {device.kind})"
    if device.capability < need:
        return f"{setting} needs compute capability >= {need[0]}.{need[1]}, this GPU has " + ".".join(
            map(str, device.capability)
        )
    if setting == "bf16" and _cuda_major(device) < 11:
        return f"bf16 needs CUDA >= 11, this Paddle is built with CUDA {device.cuda}"
    return None


def resolve(setting: str, device: Device) -> AmpPlan:
    """The precision ``train.amp: <setting>`` runs with on ``device`` (the table in the module docstring)."""
    if setting == "off":
        return AmpPlan(None, "float32 (train.amp: off)")
    wanted = "fp16" if setting == "auto" else setting
    missing = _supports(wanted, device)
    if missing is None:
        return AmpPlan(_DTYPES[wanted], f"{wanted} autocast (train.amp: {setting}) on {device.text()}")
    if setting == "auto":
        return AmpPlan(None, f"float32 (train.amp: auto; {missing})")
    return AmpPlan(None, f"float32: train.amp: {setting} ignored, {missing}", fell_back=True)


def plan_for(setting: str) -> AmpPlan:
    """:func:`resolve` for this process's device; logs the precision (a warning when it fell back)."""
    plan = resolve(setting, probe_device())
    if plan.fell_back:
        log.warning("precision: %s; set train.amp: auto or off to silence this", plan.note)
    else:
        log.info("precision: %s", plan.note)
    return plan


def make_scaler(plan: AmpPlan) -> Any:
    """Paddle's dynamic loss scaler for fp16, else None."""
    if not plan.loss_scaling:
        return None
    import paddle

    return paddle.amp.GradScaler(init_loss_scaling=INIT_LOSS_SCALING)


def restore_scaler(scaler: Any, saved: dict[str, Any] | None, source: str) -> None:
    """Put a checkpoint's ``amp_scaler`` state back (exact resume of fp16 loss scaling); a precision that
    changed since the checkpoint (another GPU, a CPU) is logged, not an error."""
    if scaler is not None and saved:
        scaler.load_state_dict(saved)
    elif saved:
        log.warning(
            "%s was trained with fp16 loss scaling; this run is not fp16, its scale is dropped", source
        )
    elif scaler is not None:
        log.info("%s holds no fp16 loss-scaler state: loss scaling starts at its initial scale", source)


def update_scaler(scaler: Any, step: int) -> None:  # step: as log.jsonl counts it (1 = the first)
    """``scaler.update()``, with what Paddle ``print``s on a skipped step (``Found inf or nan, current scale
    is: ...``) sent to the log instead of stdout, where it would land between the JSON log lines."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        scaler.update()
    if printed.getvalue().strip():
        log.warning("fp16 loss scaling at step %d: %s", step, " ".join(printed.getvalue().split()))
