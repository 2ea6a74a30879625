"""``warmstart train`` in this process, optionally stopped at a chosen step: the deterministic stand-in for a
SIGTERM that the benchmarks and the tests (``tests/train_helpers.py``) share."""

from __future__ import annotations

from typing import Any

from app.config.schema import Config
from app.errors import Preempted
from app.train.loop import run_loop
from app.train.preempt import StopRequest
from app.train.start import prepare

__all__ = ["StopAt", "train_in_process"]


class StopAt(StopRequest):
    """A stop request that fires once the session reaches ``step`` (deterministic preemption)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.at = step
        self.session: Any = None

    @property
    def requested(self) -> bool:
        if not self._event.is_set() and self.session is not None and self.session.step >= self.at:
            self.request(f"stop at step {self.at}")
        return self._event.is_set()


def train_in_process(cfg: Config, stop_at: int | None = None) -> tuple[int, Any]:
    """Train ``cfg`` here; returns (exit code, session). With ``stop_at``, stopped (and saved) there."""
    stop = StopAt(stop_at) if stop_at is not None else StopRequest()
    session = prepare(cfg, stop)
    if isinstance(stop, StopAt):
        stop.session = session
    try:
        rc = run_loop(session)
    except Preempted as exc:
        rc = exc.exit_code
    finally:
        session.mgr.close()
        session.runlog.close()
    return rc, session
