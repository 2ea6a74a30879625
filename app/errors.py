"""The one error family users see, and the exit codes it maps to.

Every user-facing failure raises a subclass of :class:`AppError`. The CLI catches them once, prints one
line (``warmstart: error: <message>``) and exits with the class's code; no traceback is shown for them.
"""

from __future__ import annotations

from app.redact import redact_text

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_STORAGE",
    "EXIT_CHECKPOINT",
    "EXIT_TASK",
    "EXIT_PREEMPTED",
    "EXIT_INTERRUPTED",
    "EXIT_PEER_LOST",
    "AppError",
    "ConfigError",
    "StorageError",
    "CheckpointError",
    "TaskError",
    "Preempted",
    "PreemptedBeforeStart",
    "PeerLost",
    "PREEMPTED_BEFORE_START",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected internal error (a bug): traceback shown
EXIT_USAGE = 2  # bad command line or configuration
EXIT_STORAGE = 3  # object store unreachable, denied, missing bucket, retries exhausted
EXIT_CHECKPOINT = 4  # no usable checkpoint, verification failed, state does not match the model
EXIT_TASK = 5  # task/data problem: missing files, bad columns, unknown labels
# 143 = 128 + SIGTERM: what a process killed by SIGTERM reports. Kubernetes podFailurePolicy and
# PaddleJob's ExitCode policy (128-255 retried) both treat it as retryable, and it is not a config error.
EXIT_PREEMPTED = 143
# 130 = 128 + SIGINT: a second Ctrl-C while training stops at once WITHOUT saving. Retryable (the run
# resumes from its last committed checkpoint), unlike 2, which means "fix the command line".
EXIT_INTERRUPTED = 130
# 142 = 128 + SIGALRM: the lost-peer watchdog's alarm. Another rank of a multi-process job stopped answering
# (its node was lost or its link cut): this rank cannot go on alone, so it exits at once without saving.
# Retryable (128-255 for PaddleJob's ExitCode policy): the next launch resumes from the last commit.
EXIT_PEER_LOST = 142


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class AppError(Exception):
    """A failure caused by input or environment, reported as one line with a documented exit code."""

    exit_code: int = EXIT_FAILURE
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # A URL in a message never carries its credentials, and a name in it never breaks the one line
        # (a crafted key or file name with a newline or a terminal escape is shown escaped).
        self.message = _one_line(redact_text(message))
        self.hint = _one_line(redact_text(hint)) if hint else hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def report(self) -> str:
        """The one line the CLI prints: ``warmstart: <kind>: <what, where> (<what to do>)``."""
        return f"warmstart: {self.kind}: {self.line()}"


class ConfigError(AppError):
    exit_code = EXIT_USAGE
    kind = "config"


class StorageError(AppError):
    exit_code = EXIT_STORAGE
    kind = "storage"


class CheckpointError(AppError):
    exit_code = EXIT_CHECKPOINT
    kind = "checkpoint"


class TaskError(AppError):
    exit_code = EXIT_TASK
    kind = "task"


class Preempted(AppError):
    """Raised after a preemption save completed: not an error, but the process must exit non-zero."""

    exit_code = EXIT_PREEMPTED
    kind = "preempted"


#: What a stop request before the first training step of this process prints (exit 143).
PREEMPTED_BEFORE_START = "preempted before training started, nothing to save"


class PreemptedBeforeStart(Preempted):
    """A stop request (signal or spot notice) came during start-up: nothing was trained, nothing saved."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{PREEMPTED_BEFORE_START} ({reason}); run the same command again")

    def report(self) -> str:
        return f"warmstart: {self.line()}"


class PeerLost(AppError):
    """Another rank stopped answering (node lost, link cut): printed by the watchdog in app.train.peers."""

    exit_code = EXIT_PEER_LOST
    kind = "peer-lost"
