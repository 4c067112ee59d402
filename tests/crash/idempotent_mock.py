"""The provider side of the crash tests: a loopback server in front of a Prism contract mock.

Mailbox (`docs/api/mailbox.openapi.yaml`): it honours `Idempotency-Key` as our contract says,
and each message's `idempotency_key` in a batch deposit (`/v1/message-batches`) the same way.
The first request for a key is forwarded to Prism (which checks it against the contract); if
Prism accepts it, it is one DEPOSIT (an effect), given an id of its own (Prism answers the
same example id to everyone), and its answer is kept; a later request with the same key gets
the kept answer and counts as a REPLAY (no effect).

SendGrid (v3 Mail Send has no idempotency key): every accepted request is forwarded and each
of its personalizations counts as one raw SEND of its `custom_args.relance_key`; a key sent
twice is a duplicate a person would have received.

It runs in the test process, so it outlives the worker it serves when the worker is killed.
Nothing is persisted: counts live in memory.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
MAILBOX_PATH = "/v1/messages"
MAILBOX_BATCH_PATH = "/v1/message-batches"
SENDGRID_PATH = "/v3/mail/send"


@dataclass
class ProviderCounts:
    """What the provider did: effects per key, replays absorbed, ids given."""

    deposits: Counter[str] = field(default_factory=Counter)
    replays: Counter[str] = field(default_factory=Counter)
    ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0
    refused: int = 0
    _answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    def key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def next_id(self, prefix: str) -> str:
        with self._lock:
            self._seq += 1
            return f"{prefix}-{self._seq:08d}"

    @property
    def total_effects(self) -> int:
        return sum(self.deposits.values())

    def duplicated(self) -> dict[str, int]:
        """Keys with more than one effect, and how many."""
        return {k: n for k, n in self.deposits.items() if n > 1}


def _forward(client: httpx.Client, upstream: str, handler: BaseHTTPRequestHandler, body: bytes):
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
    return client.request(handler.command, upstream + handler.path, headers=headers, content=body)


def _handler(
    counts: ProviderCounts, client: httpx.Client, upstream: str, kind: str, honour_key: bool
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without this, Nagle + delayed ACK add
            # 40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            # The caller may have been killed meanwhile: the effect stands, the answer is lost.
            with suppress(OSError):
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in _HOP and k.lower() != "content-encoding":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with counts._lock:
                counts.requests += 1
            path = self.path.split("?")[0]
            if kind == "mailbox" and self.command == "POST" and path == MAILBOX_PATH:
                self._deposit(body)
            elif kind == "mailbox" and self.command == "POST" and path == MAILBOX_BATCH_PATH:
                self._deposit_batch(body)
            elif kind == "sendgrid" and self.command == "POST" and path == SENDGRID_PATH:
                self._mail_send(body)
            else:
                r = _forward(client, upstream, self, body)
                self._answer(r.status_code, dict(r.headers), r.content)

        def _deposit(self, body: bytes) -> None:
            key = self.headers.get("Idempotency-Key") or ""
            with counts.key_lock(key):
                kept = counts._answers.get(key) if key and honour_key else None
                if kept is not None:
                    with counts._lock:
                        counts.replays[key] += 1
                    self._answer(*kept)
                    return
                r = _forward(client, upstream, self, body)
                headers, content = dict(r.headers), r.content
                if r.status_code in (200, 201) and key:
                    provider_id = counts.next_id("msg")
                    data = json.loads(content)
                    data["id"] = provider_id
                    content = json.dumps(data).encode()
                    with counts._lock:
                        counts.deposits[key] += 1
                        counts.ids[key].append(provider_id)
                        counts._answers[key] = (r.status_code, headers, content)
                else:
                    with counts._lock:
                        counts.refused += 1
            self._answer(r.status_code, headers, content)

        def _kept_id(self, key: str) -> str | None:
            kept = counts._answers.get(key) if key and honour_key else None
            return str(json.loads(kept[2])["id"]) if kept else None

        def _deposit_batch(self, body: bytes) -> None:
            try:
                keys = [str(m.get("idempotency_key") or "") for m in json.loads(body)["messages"]]
            except (ValueError, KeyError, TypeError, AttributeError):
                keys = []
            # Every key of the batch is held (in one order: no deadlock between batches).
            locks = [counts.key_lock(k) for k in sorted(set(keys))]
            for lock in locks:
                lock.acquire()
            try:
                # Prism checks the whole batch against the contract; its results are its example.
                r = _forward(client, upstream, self, body)
                if r.status_code != 200 or not keys:
                    with counts._lock:
                        counts.refused += 1
                    self._answer(r.status_code, dict(r.headers), r.content)
                    return
                results = []
                for key in keys:
                    kept = self._kept_id(key)
                    if kept is not None:
                        with counts._lock:
                            counts.replays[key] += 1
                        results.append({"idempotency_key": key, "status": 200, "id": kept})
                        continue
                    provider_id = counts.next_id("msg")
                    answer = {"id": provider_id, "status": "unread"}
                    with counts._lock:
                        counts.deposits[key] += 1
                        counts.ids[key].append(provider_id)
                        counts._answers[key] = (201, {}, json.dumps(answer).encode())
                    results.append({"idempotency_key": key, "status": 201, "id": provider_id})
            finally:
                for lock in locks:
                    lock.release()
            content = json.dumps({"results": results}).encode()
            self._answer(200, {"Content-Type": "application/json"}, content)

        def _mail_send(self, body: bytes) -> None:
            r = _forward(client, upstream, self, body)
            headers = dict(r.headers)
            if r.status_code == 202:
                message_id = counts.next_id("sg")
                headers["X-Message-Id"] = message_id
                keys = [
                    str((p.get("custom_args") or {}).get("relance_key", ""))
                    for p in json.loads(body).get("personalizations", [])
                ]
                with counts._lock:
                    for i, k in enumerate(keys):
                        counts.deposits[k] += 1
                        counts.ids[k].append(f"{message_id}.{i}")
            else:
                with counts._lock:
                    counts.refused += 1
            self._answer(r.status_code, headers, r.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A killed worker resets its connection: expected here, not worth a traceback."""


@dataclass
class RunningMock:
    url: str
    counts: ProviderCounts


@contextmanager
def provider_mock(upstream: str, kind: str, *, honour_key: bool = True) -> Iterator[RunningMock]:
    """Serve `kind` ('mailbox' or 'sendgrid') on a free loopback port in front of `upstream`.

    `honour_key=False` makes a mailbox that ignores `Idempotency-Key` (every request deposits):
    the control that shows the crash campaign does see duplicates when nothing absorbs them.
    """
    if kind not in ("mailbox", "sendgrid"):
        raise ValueError(kind)
    counts = ProviderCounts()
    with httpx.Client(timeout=30.0) as client:
        server = _Server(
            ("127.0.0.1", 0), _handler(counts, client, upstream.rstrip("/"), kind, honour_key)
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield RunningMock(url=f"http://127.0.0.1:{server.server_address[1]}", counts=counts)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
