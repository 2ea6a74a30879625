"""``make gpu-check``: the GPU acceptance run (AMP train -> SIGTERM -> resume per task kind, checkpoint
stall, loop throughput, data wait, nvidia-smi and Paddle facts) into a report a user can attach to a bug.

Entry: ``python -m app.gpucheck`` (:mod:`app.gpucheck.cli`); docs/gpu.md describes it.
"""

__all__ = ["cli", "smi", "sysinfo", "cases", "resume", "measure", "report", "standin", "child"]
