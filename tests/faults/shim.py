"""Test-only launcher: run the real ``warmstart`` CLI with the checkpoint save path slowed and instrumented.

``python -m tests.faults.shim train -c ... --set ...`` behaves exactly like ``warmstart train ...``, except
that (only in this process, only because this file wraps them) the save phases sleep and report
themselves, so a test can SIGKILL the trainer inside a chosen phase. Nothing in ``app/`` knows about it.

Environment (read only here):

- ``WS_FAULT_MARKS``: a file to append one line per event to: ``step N`` after every optimizer step,
  ``begin|end PHASE N`` around each phase and ``did commit N`` right after a manifest was written.
  Lines go out with one ``os.write`` on an ``O_APPEND`` descriptor, so they survive a SIGKILL.
- ``WS_FAULT_DELAY_S``: seconds each phase takes longer (split before/after the real work).

Phases: ``snapshot`` (host copy on the training thread), ``write`` (serializing one tensor group),
``upload`` (one file to a remote store), ``commit`` (writing ``manifest.json``).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["install", "main"]

_STEP_RE = re.compile(r"step-(\d{8,})")
_FD: int | None = None
_DELAY = 0.0


def mark(text: str) -> None:
    if _FD is not None:
        os.write(_FD, f"{text} {time.monotonic():.4f}\n".encode())


def _step_of(text: str) -> int:
    found = _STEP_RE.search(text)
    return int(found.group(1)) if found else -1


def _phase(name: str, step: int, real: Callable[[], Any]) -> Any:
    mark(f"begin {name} {step}")
    time.sleep(_DELAY / 2)
    out = real()
    if name == "commit":
        mark(f"did commit {step}")
    time.sleep(_DELAY / 2)
    mark(f"end {name} {step}")
    return out


def _wrap_snapshot(real: Callable) -> Callable:
    @functools.wraps(real)
    def snapshot(s: Any) -> Any:
        return _phase("snapshot", s.step, lambda: real(s))

    return snapshot


def _wrap_write(real: Callable) -> Callable:
    @functools.wraps(real)
    def write_tensors(tensors: Any, path: Any, what: str, **kw: Any) -> Any:
        return _phase("write", _step_of(what), lambda: real(tensors, path, what, **kw))

    return write_tensors


def _wrap_upload(real: Callable) -> Callable:
    @functools.wraps(real)
    def upload_file(self: Any, local: Any, key: str, **kw: Any) -> None:
        _phase("upload", _step_of(key), lambda: real(self, local, key, **kw))

    return upload_file


def _wrap_put(real: Callable) -> Callable:
    @functools.wraps(real)
    def put_bytes(self: Any, key: str, data: bytes, **kw: Any) -> None:
        if not key.endswith("/manifest.json"):
            return real(self, key, data, **kw)
        return _phase("commit", _step_of(key), lambda: real(self, key, data, **kw))

    return put_bytes


def _wrap_train_step(real: Callable) -> Callable:
    @functools.wraps(real)
    def train_step(s: Any) -> float:
        loss = real(s)
        mark(f"step {s.step}")
        return loss

    return train_step


def install() -> None:
    """Wrap the save phases (module globals looked up at call time, so wrapping them here is enough)."""
    global _FD, _DELAY
    marks = os.environ.get("WS_FAULT_MARKS")
    if marks:
        _FD = os.open(marks, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _DELAY = float(os.environ.get("WS_FAULT_DELAY_S", "0") or 0)

    import app.checkpoint.writer as writer
    import app.train.loop as loop
    import app.train.start as start
    from app.store.local import LocalStore
    from app.store.s3 import S3Store

    start.snapshot = _wrap_snapshot(start.snapshot)
    writer.write_tensors = _wrap_write(writer.write_tensors)
    loop.train_step = _wrap_train_step(loop.train_step)
    S3Store.upload_file = _wrap_upload(S3Store.upload_file)
    for cls in (S3Store, LocalStore):
        cls.put_bytes = _wrap_put(cls.put_bytes)


def main() -> int:
    install()
    from app.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
