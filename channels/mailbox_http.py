"""The ameli mailbox over HTTP: the insurer's internal service (docs/api/mailbox.openapi.yaml)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx

from channels.base import PermanentFailure, Receipt, TemporaryFailure
from channels.mailbox import MailboxMessage
from channels.resilience import (
    RETRYABLE_STATUS,
    Backoff,
    RateLimiter,
    Retryable,
    parse_retry_after,
)

# Anything shaped like a NIR (15 characters, Corsica 2A/2B) is masked in error messages.
_NIR_LIKE = re.compile(r"[12][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{6,8}")


def _redact(text: str, *secrets: str) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return _NIR_LIKE.sub("***", text)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe(response: httpx.Response, problem: dict[str, Any]) -> str:
    """A readable account of a refusal: status, title, detail, each field's complaint."""
    parts = [f"mailbox service answered {response.status_code}"]
    head = " — ".join(str(problem[k]) for k in ("title", "detail") if problem.get(k))
    if head:
        parts.append(head)
    notes = [
        f"{e.get('field', '?')}: {e.get('message', '')}"
        for e in problem.get("errors") or []
        if isinstance(e, dict)
    ]
    # A contract mock (Prism) lists what the request got wrong in this header.
    try:
        violations = json.loads(response.headers.get("sl-violations", "[]"))
    except ValueError:
        violations = []
    notes += [str(v.get("message", "")) for v in violations if isinstance(v, dict)]
    if notes:
        parts.append("; ".join(notes))
    return ": ".join(parts)


class HttpMailbox:
    """Deposits through the mailbox service, idempotent by the outbox key."""

    def __init__(
        self,
        base_url: str,
        token: str,
        per_second: float = 20.0,
        client: httpx.Client | None = None,
        backoff: Backoff | None = None,
        sender: str = "Assurance Maladie",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, application/problem+json",
        }
        self.limiter = RateLimiter(per_second)
        self.backoff = backoff or Backoff()
        self.sender = sender

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One rate-limited request; 429, 5xx and transport errors raise Retryable."""
        self.limiter.acquire()
        try:
            r = self.client.request(method, self.base_url + path, **kw)
        except httpx.TransportError as e:
            raise Retryable(f"mailbox service unreachable: {type(e).__name__}") from e
        if r.status_code in RETRYABLE_STATUS:
            raise Retryable(
                f"mailbox service answered {r.status_code}",
                retry_after=parse_retry_after(r.headers.get("Retry-After")),
                status=r.status_code,
            )
        return r

    def _call(self, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self.backoff.run(lambda: self._request(method, path, **kw))
        except Retryable as e:
            code = "rate_limited" if e.status == 429 else "unavailable"
            raise TemporaryFailure(str(e), key=key, code=code) from None

    def deposit(self, message: MailboxMessage) -> Receipt:
        """Deposit once per key; a replay of the key returns the first deposit."""
        if not message.recipient:
            raise PermanentFailure("no recipient account", key=message.key, code="no_account")
        payload = {
            "recipient": {"nir": message.recipient},
            "subject": message.subject,
            "body": message.body,
            "sender": self.sender,
            # The outbox key starts with the campaign id: (campaign, person, step, attempt).
            "campaign": message.key.split(":", 1)[0],
        }
        r = self._call(
            message.key,
            "POST",
            "/v1/messages",
            json=payload,
            headers={**self.headers, "Idempotency-Key": message.key},
        )
        if r.status_code in (200, 201):
            body = _problem(r)
            if not body.get("id"):
                raise TemporaryFailure(
                    f"mailbox service answered {r.status_code} without an id",
                    key=message.key,
                    code="bad_answer",
                )
            return Receipt(key=message.key, provider_id=str(body["id"]), status="sent")
        problem = _problem(r)
        text = _redact(_describe(r, problem), message.recipient)
        if r.status_code == 404 and str(problem.get("type", "")).endswith("/no-account"):
            raise PermanentFailure(text, key=message.key, code="no_account")
        if r.status_code in (401, 403):
            # Our token is wrong: no message can go out, but the message itself is fine.
            raise TemporaryFailure(text, key=message.key, code="unauthorized")
        raise PermanentFailure(text, key=message.key, code=f"rejected_{r.status_code}")

    def read_status(self, provider_id: str) -> str:
        """'unread', 'read', 'deleted' or 'unknown' (no such message)."""
        r = self._call(
            provider_id, "GET", f"/v1/messages/{quote(provider_id, safe='')}", headers=self.headers
        )
        if r.status_code == 404:
            return "unknown"
        if r.status_code != 200:
            raise PermanentFailure(_redact(_describe(r, _problem(r))), code="read_status")
        status = str(_problem(r).get("status", "unknown"))
        return status if status in ("unread", "read", "deleted") else "unknown"
