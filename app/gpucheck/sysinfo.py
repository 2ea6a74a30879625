"""What this machine and this Paddle are: the part of the report that says where the check ran."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from app import __version__

__all__ = ["paddle_facts", "gpu_visible", "host_facts"]


def _call(fn: Any) -> Any:
    """``fn()`` as plain data, or the error text (a CPU build raises on some CUDA queries)."""
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001  (a report of what the build says, whatever it raises)
        return f"error: {type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(value, tuple | list):
        return [int(v) if isinstance(v, int) else v for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def paddle_facts(device: str) -> dict[str, Any]:
    """Paddle's version, its CUDA/cuDNN build, and (on a GPU) the device's name and compute capability."""
    import paddle

    facts: dict[str, Any] = {
        "paddle_version": paddle.__version__,
        "compiled_with_cuda": bool(paddle.is_compiled_with_cuda()),
        "cuda": _call(paddle.version.cuda),
        "cudnn": _call(paddle.version.cudnn),
        "device": _call(paddle.device.get_device),
    }
    if device == "gpu":
        facts["device_count"] = _call(paddle.device.cuda.device_count)
        facts["capability"] = _call(paddle.device.cuda.get_device_capability)
        facts["device_name"] = _call(paddle.device.cuda.get_device_name)
    return facts


def gpu_visible() -> tuple[bool, str]:
    """(True, "") when Paddle can train on a CUDA GPU here; else (False, why not)."""
    import paddle

    if not paddle.is_compiled_with_cuda():
        return (
            False,
            f"this Paddle ({paddle.__version__}) is a CPU build (paddle.is_compiled_with_cuda() is False)",
        )
    count = _call(paddle.device.cuda.device_count)
    if not isinstance(count, int) or count < 1:
        return (
            False,
            f"Paddle is built with CUDA {paddle.version.cuda()} but sees no GPU (device_count {count})",
        )
    return True, ""


def host_facts() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {
        "warmstart_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg": [round(x, 2) for x in load if x is not None],
    }
