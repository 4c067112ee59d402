"""A loopback HTTP proxy that injects faults in front of a contract mock.

    with fault_proxy("http://127.0.0.1:4011") as proxy:
        proxy.inject(Fault(429, retry_after=0), times=2)  # the next 2 requests get 429
        proxy.inject(Fault(503), times=None)              # then every request gets 503
        proxy.inject(Fault.drop())                        # close the connection, no answer
        client = SomeSDK(base_url=proxy.url)
        ...
        proxy.count("/v3/mail/send"), proxy.bodies("/v3/mail/send")
        proxy.clear()                                     # forget injected faults

Requests without a queued fault are forwarded to the upstream unchanged. Every request that
arrives is recorded (method, path, body, whether a fault answered it), faults included.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}


@dataclass(frozen=True)
class Fault:
    """An answer given instead of the upstream's: a status, or a dropped connection."""

    status: int = 503
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    retry_after: float | None = None
    dropped: bool = False

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls(dropped=True)


@dataclass(frozen=True)
class Seen:
    """One request the proxy received."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    fault: Fault | None


@dataclass
class FaultProxy:
    """The running proxy: its URL, what it saw, and the queue of faults to inject."""

    url: str = ""
    upstream: str = ""
    seen: list[Seen] = field(default_factory=list)
    _queue: list[tuple[Fault, int | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, fault: Fault, times: int | None = 1) -> None:
        """Answer the next `times` requests (None: every request until `clear`) with `fault`."""
        with self._lock:
            self._queue.append((fault, times))

    def clear(self) -> None:
        """Drop every queued fault: requests go upstream again."""
        with self._lock:
            self._queue.clear()

    def count(self, path: str | None = None) -> int:
        """How many requests arrived (for one path, query string ignored)."""
        return len(self.requests(path))

    def requests(self, path: str | None = None) -> list[Seen]:
        """The requests that arrived, in order (for one path, query string ignored)."""
        with self._lock:
            return [s for s in self.seen if path is None or s.path.split("?")[0] == path]

    def bodies(self, path: str | None = None) -> list[bytes]:
        """The request bodies that arrived, in order."""
        return [s.body for s in self.requests(path)]

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self._queue:
                return None
            fault, times = self._queue[0]
            if times is not None:
                if times <= 1:
                    self._queue.pop(0)
                else:
                    self._queue[0] = (fault, times - 1)
            return fault


def _handler(proxy: FaultProxy, client: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: test output stays readable and bodies may hold addresses."""

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy._next_fault()
            with proxy._lock:
                proxy.seen.append(
                    Seen(self.command, self.path, body, dict(self.headers.items()), fault)
                )
            if fault is not None and fault.dropped:
                self.close_connection = True
                with suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None:
                self.send_response(fault.status)
                for k, v in fault.headers:
                    self.send_header(k, v)
                if fault.retry_after is not None:
                    self.send_header("Retry-After", f"{fault.retry_after:g}")
                self.send_header("Content-Length", str(len(fault.body)))
                self.end_headers()
                self.wfile.write(fault.body)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            url = proxy.upstream + self.path
            r = client.request(self.command, url, headers=headers, content=body)
            self.send_response(r.status_code)
            for k, v in r.headers.multi_items():
                if k.lower() not in _HOP and k.lower() != "content-encoding":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Start a proxy to `upstream` on a free loopback port; stop it on exit."""
    proxy = FaultProxy(upstream=upstream.rstrip("/"))
    if not urlsplit(proxy.upstream).scheme:
        raise ValueError(f"upstream must be a base URL, not {upstream!r}")
    with httpx.Client(timeout=30.0) as client:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy, client))
        server.daemon_threads = True
        proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
