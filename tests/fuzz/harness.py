"""Run one fuzz target in-process and judge the outcome; tally what every target saw.

An outcome is acceptable when the target returned (or exited with) a documented exit code and, on a
failure, printed exactly one ``warmstart: <kind>: ...`` line as its last stderr line — or raised one of
our :class:`~app.errors.AppError` subclasses when called as a function. Anything else (a Python
exception escaping, a traceback printed, a file of the checkpoint root deleted or changed) is a failure.

Failures are recorded under a signature (target, exception type, innermost ``app/`` frame) so the JSON
``make faults`` reads can say how many distinct ones a run found. By default a failure is re-raised at
once, so Hypothesis shrinks it and reports it; with ``WS_FUZZ_COLLECT=1`` failures are only recorded and
each test asserts at its end, which lists every distinct failure of a long run in one go.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import EXIT_CHECKPOINT, EXIT_OK, EXIT_PREEMPTED, EXIT_STORAGE, EXIT_TASK, EXIT_USAGE, AppError

__all__ = [
    "budget",
    "DOCUMENTED",
    "Tally",
    "TALLY",
    "collect_mode",
    "run_cli",
    "run_call",
    "tree_digest",
    "lost_files",
]

#: Exit codes a run may end with on bad input (app/errors.py); 1 is "a bug, traceback shown".
DOCUMENTED = frozenset({EXIT_OK, EXIT_USAGE, EXIT_STORAGE, EXIT_CHECKPOINT, EXIT_TASK, EXIT_PREEMPTED})


def collect_mode() -> bool:
    return os.environ.get("WS_FUZZ_COLLECT") == "1"


def budget(ci: int) -> int:
    """Examples per test: ``ci`` in the default profile, 1000 in ``long``; WS_FUZZ_EXAMPLES overrides both."""
    explicit = os.environ.get("WS_FUZZ_EXAMPLES")
    if explicit:
        return int(explicit)
    return 1000 if os.environ.get("WS_FUZZ_PROFILE") == "long" else ci


class FuzzFailure(AssertionError):
    """An outcome that breaks the contract without a Python exception (bad exit code, lost file...)."""


@dataclass
class TargetCounts:
    cases: int = 0
    ok: int = 0
    app_errors: Counter = field(default_factory=Counter)
    tracebacks: int = 0
    files_lost: int = 0
    contract: int = 0


@dataclass
class Tally:
    """Per-target counts plus every distinct failure signature with one example input."""

    targets: dict[str, TargetCounts] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def counts(self, target: str) -> TargetCounts:
        return self.targets.setdefault(target, TargetCounts())

    def fail(self, target: str, kind: str, signature: str, detail: str, example: str) -> None:
        key = f"{target} | {kind} | {signature}"
        entry = self.failures.setdefault(key, {"count": 0, "detail": detail[:400], "example": example[:400]})
        entry["count"] += 1

    def failures_of(self, prefix: str) -> list[str]:
        return [k for k in self.failures if k.startswith(prefix)]

    def snapshot(self) -> dict[str, int]:
        return {k: v["count"] for k, v in self.failures.items()}

    def new_since(self, seen: dict[str, int]) -> list[str]:
        """Failure signatures recorded (again) since ``seen`` was taken."""
        return [k for k, v in self.failures.items() if v["count"] > seen.get(k, 0)]

    def as_dict(self) -> dict[str, Any]:
        targets = {
            name: {
                "cases": c.cases,
                "ok": c.ok,
                "app_errors": dict(sorted(c.app_errors.items())),
                "tracebacks": c.tracebacks,
                "files_lost": c.files_lost,
                "contract_violations": c.contract,
            }
            for name, c in sorted(self.targets.items())
        }
        return {
            "cases": sum(c.cases for c in self.targets.values()),
            "tracebacks": sum(c.tracebacks for c in self.targets.values()),
            "files_lost": sum(c.files_lost for c in self.targets.values()),
            "contract_violations": sum(c.contract for c in self.targets.values()),
            "distinct_failures": len(self.failures),
            "targets": targets,
            "failures": dict(sorted(self.failures.items())),
        }


TALLY = Tally()


def _app_frame(exc: BaseException) -> str:
    """The innermost frame inside ``app/`` (where the bug is), else the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "/app/" in f.filename]
    f = (inside or frames or [None])[-1]
    return f"{Path(f.filename).name}:{f.lineno} {f.name}" if f else "?"


def _signature(exc: BaseException) -> str:
    return f"{type(exc).__name__} at {_app_frame(exc)}"


def _raise_or_record(target: str, exc: BaseException, example: str) -> None:
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    TALLY.fail(target, "traceback", _signature(exc), detail, example)
    if not collect_mode():
        exc.add_note(f"fuzz target {target}; input: {example[:300]}")
        raise exc


def _generic(what: str) -> str:
    """``what`` without its quoted values and numbers, so one broken promise is one signature."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|-?\d[\d.e+]*", "_", what).split(":")[0][:100]


def _contract(target: str, what: str, example: str) -> None:
    TALLY.counts(target).contract += 1
    TALLY.fail(target, "contract", _generic(what), what, example)
    if not collect_mode():
        raise FuzzFailure(f"{target}: {what}; input: {example[:300]}")


def _check_lines(target: str, rc: int, out: str, err: str, example: str) -> None:
    """No traceback; a documented code; an error line, if any, is the one last line of stderr.

    A command may also fail by returning its code after printing its findings (``ckpt verify`` prints
    ``step N: FAILED: ...`` and exits 4): then stdout must say something.
    """
    if "Traceback (most recent call last)" in err:
        _contract(target, "traceback printed: " + err[-300:], example)
    if rc == EXIT_OK:
        return
    lines = [ln for ln in re.split(r"[\r\n]", err) if ln.strip()]  # what terminals and log shippers split on
    ours = [ln for ln in lines if ln.startswith("warmstart: ")]
    if rc not in DOCUMENTED:
        _contract(target, f"exit code {rc} is not a documented one: {err[-200:]}", example)
    elif len(ours) > 1 or (ours and lines[-1] != ours[0]):
        _contract(target, f"exit {rc}: the 'warmstart:' line is not one last line: {err[-300:]!r}", example)
    elif not ours and not out.strip():
        _contract(target, f"exit {rc} with no message at all", example)


#: Frames a real ``warmstart`` process has used when a command starts (entry point, cli.main, dispatch).
_CLI_DEPTH = 15


def _depth() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


@contextlib.contextmanager
def real_stack() -> Iterator[None]:
    """The recursion headroom of a real process (limit 1000), not Hypothesis' raised limit.

    Hypothesis adds ~2000 frames of headroom while it runs a test, which would hide exactly the
    RecursionErrors (deeply nested JSON/YAML) this suite looks for.
    """
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(_depth() + 1000 - _CLI_DEPTH)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """``cli.main`` points the root logger at this run's stderr; put the test session's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def run_cli(target: str, argv: list[str], example: str) -> tuple[int | None, str, str]:
    """``warmstart <argv>`` in this process: (exit code or None after a recorded failure, stdout, stderr)."""
    from app.cli import main

    counts = TALLY.counts(target)
    counts.cases += 1
    out, err = io.StringIO(), io.StringIO()
    rc: int | None = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), real_stack(), _logging_kept():
            rc = main(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 with its own usage message
        rc = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        counts.app_errors[f"argparse {rc}"] += 1
        if rc not in (EXIT_OK, EXIT_USAGE):
            _contract(target, f"argparse exit {rc}", example)
        return rc, out.getvalue(), err.getvalue()
    except Exception as exc:  # noqa: BLE001  (the point: nothing else may escape)
        counts.tracebacks += 1
        _raise_or_record(target, exc, example)
        return None, out.getvalue(), err.getvalue()
    if rc == EXIT_OK:
        counts.ok += 1
    else:
        counts.app_errors[str(rc)] += 1
    _check_lines(target, rc, out.getvalue(), err.getvalue(), example)
    return rc, out.getvalue(), err.getvalue()


def run_call(target: str, fn: Callable[[], Any], example: str) -> tuple[bool, Any]:
    """Call ``fn``: (True, result), (False, the AppError) — or a recorded failure, (False, None)."""
    counts = TALLY.counts(target)
    counts.cases += 1
    try:
        with real_stack():
            result = fn()
    except AppError as exc:
        counts.app_errors[str(exc.exit_code)] += 1
        if re.search(r"[\r\n]", exc.line()):
            _contract(target, f"{type(exc).__name__} message spans lines: {exc.line()[:200]!r}", example)
        return False, exc
    except Exception as exc:  # noqa: BLE001
        counts.tracebacks += 1
        _raise_or_record(target, exc, example)
        return False, None
    counts.ok += 1
    return True, result


def contract(target: str, what: str, example: str) -> None:
    """Record (and, unless collecting, raise) a broken promise found by the caller."""
    _contract(target, what, example)


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def lost_files(target: str, root: Path, before: dict[str, str], example: str) -> None:
    """Every file of ``before`` must still be under ``root`` with the same sha256."""
    after = tree_digest(root)
    gone = sorted(k for k in before if k not in after)
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    if gone or changed:
        TALLY.counts(target).files_lost += len(gone) + len(changed)
        steps = sorted({k.split("/")[0] for k in gone + changed})
        _contract(target, f"files lost: {len(gone)} deleted, {len(changed)} changed in {steps}", example)


def write_results() -> Path | None:
    """Write the tally to $WS_FAULTS_RESULTS/fuzz.json (what tests/faults/report.py reads)."""
    out = os.environ.get("WS_FAULTS_RESULTS")
    if not out or not TALLY.targets:
        return None
    path = Path(out) / "fuzz.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = {"profile": os.environ.get("WS_FUZZ_PROFILE", "ci"), **TALLY.as_dict()}
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path
