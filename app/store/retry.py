"""Retry policy for transient storage errors: exponential backoff with full jitter.

The core is deterministic: :meth:`RetryPolicy.delay` takes the random draw from an injected function and
:func:`retry_call` takes an injected ``sleep``, so tests check exact delays without waiting. Only errors
the caller classifies as transient are retried; everything else propagates on the first attempt.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from app.store.base import TransientStorageError

__all__ = ["RetryPolicy", "retry_call"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` tries in all (1 = no retry); the n-th retry waits U(0, min(max_s, base_s * 2**(n-1)))."""

    max_attempts: int = 6
    base_s: float = 0.5
    max_s: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s < 0 or self.max_s < 0:
            raise ValueError(f"invalid retry policy {self}")

    def cap(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_s, self.base_s * (2.0 ** (attempt - 1)))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: a uniform draw in ``[0, cap(attempt))``; ``rand`` returns a float in [0, 1)."""
        return self.cap(attempt) * rand()

    def next_delay(self, attempts_made: int, rand: Callable[[], float] = random.random) -> float | None:
        """The wait before the next attempt, or None once ``attempts_made`` used up the budget."""
        if attempts_made >= self.max_attempts:
            return None
        return self.delay(attempts_made, rand)


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures with backoff.

    Each retry is logged at WARNING with the attempt number and ``what`` (a URI). When the budget is
    spent a :class:`TransientStorageError` naming ``what`` is raised from the last error.
    """
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            wait = policy.next_delay(attempt, rand)
            if wait is None:
                raise TransientStorageError(
                    f"{what}: still failing after {attempt} attempts: {exc}",
                    hint="the store is unreachable or throttling; check the endpoint and retry the job later",
                ) from exc
            log.warning(
                "%s: transient error (%s); attempt %d/%d failed, retrying in %.2fs",
                what,
                exc,
                attempt,
                policy.max_attempts,
                wait,
            )
            sleep(wait)
            attempt += 1
