"""What every real provider adapter shares: a rate limit, and retries with backoff and jitter.

A provider answering 429 or 5xx (or not answering) is retried a few times within the call,
waiting `base * 2**n` seconds with full jitter, or what its `Retry-After` says; past that the
adapter raises TemporaryFailure and the dispatcher tries again later with the same key.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RateLimiter:
    """A token bucket: at most `per_second` acquisitions a second, `burst` at once."""

    def __init__(
        self,
        per_second: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = per_second
        self.capacity = float(burst if burst is not None else max(1, int(per_second)))
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.last = clock()
        self.lock = threading.Lock()

    def acquire(self, n: float = 1.0) -> float:
        """Wait until `n` tokens are available and take them; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= n:
                    self.tokens -= n
                    return waited
                need = (n - self.tokens) / self.rate
            self.sleep(need)
            waited += need


class Retryable(Exception):
    """A provider answer worth trying again (429, 5xx, timeout), with its Retry-After if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 0) -> None:
        super().__init__(message)
        self.retry_after, self.status = retry_after, status


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (only the delta-seconds form is honoured)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@dataclass
class Backoff:
    """Exponential backoff with full jitter, capped; `attempts` counts the first try."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(
        self, retry: int, retry_after: float | None = None, *, seed: str | None = None
    ) -> float:
        """The wait before retry number `retry` (1-based); a `seed` gives the same wait again."""
        if retry_after is not None:
            return min(self.cap, retry_after)
        rng = self.rng if seed is None else random.Random(seed)
        # The exponent stops growing long after the cap is reached (no float overflow).
        return rng.uniform(0, min(self.cap, self.base * 2 ** (min(retry, 32) - 1)))

    def run(self, call: Callable[[], T]) -> T:
        """Call until it does not raise Retryable, or re-raise the last Retryable."""
        for n in range(1, self.attempts + 1):
            try:
                return call()
            except Retryable as e:
                if n == self.attempts:
                    raise
                self.sleep(self.delay(n, e.retry_after))
        raise AssertionError("unreachable")
