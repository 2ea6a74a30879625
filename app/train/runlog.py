"""What a user sees while training: JSON lines (stdout and ``<run.dir>/log.jsonl``) and a progress bar.

Line kinds: ``train`` (step, epoch, lr, loss, samples_per_s, eta_s), ``eval`` (metrics), and ``event``
(resume, warm_start, cold_start, checkpoint, preempted, unfreeze, done). The file is appended to, so a
resumed run continues the same log. With ``train.visualdl`` the same scalars go to ``<run.dir>/visualdl``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.redact import redact_data

__all__ = ["RunLog"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RunLog:
    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        progress: str = "auto",
        stdout: TextIO | None = None,
        visualdl: bool = False,
    ):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "log.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        self._stdout = stdout or sys.stdout
        self.total_steps = total_steps
        self._bar = None
        if progress == "on" or (progress == "auto" and sys.stderr.isatty()):
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, unit="step", file=sys.stderr, dynamic_ncols=True)
        self._t0 = time.monotonic()
        self._last_step: int | None = None
        self._vdl = None
        if visualdl:  # scalars for `visualdl --logdir <run.dir>/visualdl`
            from visualdl import LogWriter

            self._vdl = LogWriter(logdir=str(run_dir / "visualdl"))

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        if self._vdl is not None:
            for tag, value in values.items():
                self._vdl.add_scalar(tag=tag, value=float(value), step=step)

    def _write(self, record: dict[str, Any]) -> None:
        record.setdefault("time", _now())
        line = json.dumps(redact_data(record), separators=(", ", ": "))
        self._file.write(line + "\n")
        self._file.flush()
        print(line, file=self._stdout, flush=True)

    def start(self, step: int) -> None:
        self._t0 = time.monotonic()
        self._last_step = step
        if self._bar is not None:
            self._bar.n = step
            self._bar.refresh()

    def train(self, step: int, epoch: int, lr: float, loss: float, samples: int) -> None:
        """Log one interval ending at ``step``; ``samples`` = samples processed since the last call."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        steps_done = step - (self._last_step or 0)
        rate = steps_done / elapsed
        eta = (self.total_steps - step) / rate if rate > 0 else None
        self._write(
            {
                "kind": "train",
                "step": step,
                "epoch": epoch,
                "lr": lr,
                "loss": round(loss, 6),
                "samples_per_s": round(samples / elapsed, 2),
                "eta_s": round(eta, 1) if eta is not None else None,
            }
        )
        self._scalars(step, {"train/loss": loss, "train/lr": lr})
        self._t0 = time.monotonic()
        self._last_step = step

    def progress(self, step: int, loss: float | None = None) -> None:
        """Move the bar to ``step``; ``loss`` (the log window's mean, given at log steps) updates its text."""
        if self._bar is not None:
            self._bar.n = step
            if loss is not None:
                self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self._bar.refresh()

    def eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self._write({"kind": "eval", "step": step, "epoch": epoch, "metrics": metrics})
        self._scalars(step, {f"eval/{k}": v for k, v in metrics.items()})

    def event(self, step: int, event: str, **fields: Any) -> None:
        self._write({"kind": "event", "step": step, "event": event, **fields})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._vdl is not None:
            self._vdl.close()
        self._file.close()
