"""Login throttling per client address: password spraying across accounts is slowed down.

The per-account lock (campaigns.ledger.accounts) stops guessing one password; this stops one client
trying many accounts. In memory, per process: behind several workers, each keeps its own.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta


class LoginThrottle:
    """At most `max_failures` failed logins per address within `window`."""

    def __init__(self, max_failures: int = 20, window: timedelta = timedelta(minutes=15)) -> None:
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, address: str, now: datetime) -> deque[datetime]:
        q = self._failures[address]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, address: str, now: datetime) -> int | None:
        """Seconds until this address may try again, or None if it may try now."""
        with self._lock:
            q = self._prune(address, now)
            if len(q) < self.max_failures:
                return None
            return max(1, int((q[0] + self.window - now).total_seconds()))

    def failed(self, address: str, now: datetime) -> None:
        """Count a failed login from this address."""
        with self._lock:
            self._prune(address, now).append(now)
