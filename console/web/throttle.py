"""Login throttling per account and per client address.

An account gets few failures (`login_max_failures_per_account`): guessing one password is
slowed down, whether or not the account exists (the ledger's lock only covers real ones).
An address gets many more (`login_max_failures_per_address`): one client spraying many
accounts is slowed down, but a platform of 40 advisers behind one address survives its
colleagues' typos. The address is the peer's, or the `X-Forwarded-For` it sends only when the
peer is a configured proxy (`trusted_proxies`). In memory, per process.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(setting: str) -> tuple[Network, ...]:
    """`10.0.0.1, 10.1.0.0/16` → the networks whose forwarded addresses are believed."""
    return tuple(
        ipaddress.ip_network(p.strip(), strict=False) for p in setting.split(",") if p.strip()
    )


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the last
    address of X-Forwarded-For not itself a trusted proxy (the ones before it can be forged)."""
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


class LoginThrottle:
    """At most `max_failures` failed logins per address, `max_per_account` per account,
    within `window`."""

    def __init__(
        self,
        max_failures: int = 200,
        window: timedelta = timedelta(minutes=15),
        max_per_account: int = 10,
    ) -> None:
        self.max_failures, self.window, self.max_per_account = max_failures, window, max_per_account
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: str, now: datetime) -> deque[datetime]:
        q = self._failures[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def _wait(self, key: str, limit: int, now: datetime) -> int | None:
        q = self._prune(key, now)
        if len(q) < limit:
            if not q:
                del self._failures[key]  # no memory kept for keys with no recent failure
            return None
        return max(1, int((q[0] + self.window - now).total_seconds()))

    def retry_after(self, address: str, now: datetime, account: str | None = None) -> int | None:
        """Seconds until this address (and this account) may try again, or None if now."""
        with self._lock:
            waits = [self._wait(f"addr:{address}", self.max_failures, now)]
            if account is not None:
                waits.append(self._wait(f"acct:{account.lower()}", self.max_per_account, now))
            found = [w for w in waits if w is not None]
            return max(found) if found else None

    def account_blocked(self, account: str, now: datetime) -> bool:
        """Whether the account (rather than the address) is the one waiting."""
        with self._lock:
            return self._wait(f"acct:{account.lower()}", self.max_per_account, now) is not None

    def failed(self, address: str, now: datetime, account: str | None = None) -> None:
        """Count a failed login from this address (and against this account)."""
        with self._lock:
            self._prune(f"addr:{address}", now).append(now)
            if account is not None:
                self._prune(f"acct:{account.lower()}", now).append(now)
