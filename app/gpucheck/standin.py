"""A CUDA GPU stood in for by the CPU, so the AMP code path runs without one (tests, ``--device cpu``).

Paddle 2.6 runs no mixed precision on a CPU: ``paddle.amp.auto_cast`` and ``GradScaler`` switch themselves
off outside CUDA/XPU/custom places (with a ``UserWarning``), and even a tracer forced into O1 casts no CPU
tensor. What *can* run on a CPU is everything of ours around it: :func:`app.train.amp.resolve` seeing a GPU
of a given compute capability, the loop entering its ``auto_cast`` branch with that dtype (Paddle computes
in float32 there), and Paddle's real ``GradScaler`` doing dynamic loss scaling — its CPU kernels
(``check_finite_and_unscale``, the optimizers' ``found_inf`` skip) exist; only its constructor refuses the
CPU place, which :func:`cpu_grad_scaler` gets past. Numerics in fp16/bf16 are exactly what this cannot
show: that part runs only under ``make gpu-check`` on a GPU (docs/gpu.md).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.train import amp

__all__ = ["cpu_grad_scaler", "simulated_gpu"]


class _CudaPlace:
    """Answers the place checks of ``paddle.amp.GradScaler.__init__`` as a CUDA place would."""

    def is_gpu_place(self) -> bool:
        return True

    def is_xpu_place(self) -> bool:
        return False

    def is_custom_place(self) -> bool:
        return False


def cpu_grad_scaler(incr_every_n_steps: int = 1000, init_loss_scaling: float = amp.INIT_LOSS_SCALING) -> Any:
    """Paddle's ``GradScaler`` (initial scale :data:`app.train.amp.INIT_LOSS_SCALING`), enabled on a CPU."""
    import paddle.amp.grad_scaler as gs

    real = gs._dygraph_tracer
    gs._dygraph_tracer = lambda: types.SimpleNamespace(_expected_place=_CudaPlace())
    try:
        return gs.GradScaler(init_loss_scaling=init_loss_scaling, incr_every_n_steps=incr_every_n_steps)
    finally:
        gs._dygraph_tracer = real


@contextmanager
def simulated_gpu(
    capability: tuple[int, int] = (8, 0),
    cuda: str = "11.8",
    incr_every_n_steps: int = 1000,
    init_loss_scaling: float = amp.INIT_LOSS_SCALING,
) -> Iterator[amp.Device]:
    """While active, :mod:`app.train.amp` sees a GPU of ``capability`` and fp16 gets a CPU-enabled scaler
    (``incr_every_n_steps`` small makes the loss scale move within a short test run)."""
    device = amp.Device("gpu", capability, cuda)
    saved = amp.probe_device, amp.make_scaler
    amp.probe_device = lambda: device
    amp.make_scaler = (
        lambda plan: cpu_grad_scaler(incr_every_n_steps, init_loss_scaling) if plan.loss_scaling else None
    )
    try:
        yield device
    finally:
        amp.probe_device, amp.make_scaler = saved
