"""The ameli mailbox over HTTP: the insurer's internal service (docs/api/mailbox.openapi.yaml)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from channels.base import ChannelError, PermanentFailure, Receipt, TemporaryFailure
from channels.mailbox import MAX_BATCH, MailboxMessage
from channels.resilience import (
    RETRYABLE_STATUS,
    Backoff,
    RateLimiter,
    Retryable,
    parse_retry_after,
)

# `messages.12.recipient.nir`: the message a field complaint is about, by its place in the batch.
_ITEM = re.compile(r"^messages\.(\d+)\b")
_ITEM_RETRYABLE = frozenset({429, 503})
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


def _item_fields(response: httpx.Response, problem: dict[str, Any]) -> set[int] | None:
    """The batch places a refusal names (`messages.3.…`); None when it names none, or else."""
    try:
        violations = json.loads(response.headers.get("sl-violations", "[]"))
    except ValueError:
        violations = []
    # A contract mock's findings are in this header; its body is the contract's example.
    fields = [
        ".".join(str(p) for p in v.get("location") or [] if p not in ("request", "body"))
        for v in (violations if isinstance(violations, list) else [])
        if isinstance(v, dict)
    ] or [str(e.get("field", "")) for e in problem.get("errors") or [] if isinstance(e, dict)]
    found = [_ITEM.match(f) for f in fields if f]
    if not found or not all(found):
        return None
    return {int(m.group(1)) for m in found if m}


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

    def _payload(self, message: MailboxMessage) -> dict[str, Any]:
        return {
            "recipient": {"nir": message.recipient},
            "subject": message.subject,
            "body": message.body,
            "sender": self.sender,
            # The outbox key starts with the campaign id: (campaign, person, step, attempt).
            "campaign": message.key.split(":", 1)[0],
        }

    def deposit(self, message: MailboxMessage) -> Receipt:
        """Deposit once per key; a replay of the key returns the first deposit."""
        if not message.recipient:
            raise PermanentFailure("no recipient account", key=message.key, code="no_account")
        payload = self._payload(message)
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

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        """One `POST /v1/message-batches`; each message's own result, in order.

        A message the service did not answer for (none in `results`) is a temporary failure:
        sent again later with its key, it deposits at most once.
        """
        if len(messages) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} messages")
        out: list[Receipt | ChannelError | None] = [None] * len(messages)
        todo: list[int] = []  # places of the messages still to send
        for i, m in enumerate(messages):
            if m.recipient:
                todo.append(i)
            else:
                out[i] = PermanentFailure("no recipient account", key=m.key, code="no_account")
        # A refusal naming some messages fails those only; the others go again, once.
        for _ in range(2):
            if not todo:
                break
            named = self._post_batch([messages[i] for i in todo])
            again = []
            for i, r in zip(todo, named, strict=True):
                if isinstance(r, _Named):
                    again.append(i)
                    out[i] = r.error
                else:
                    out[i] = r
            todo = again if len(again) < len(todo) else []
        return [r for r in out if r is not None]

    def _post_batch(
        self, messages: Sequence[MailboxMessage]
    ) -> Sequence[Receipt | ChannelError | _Named]:
        """One batch request; items refused only for another's fault come back `_Named`."""
        keys = [m.key for m in messages]
        payload = {"messages": [{"idempotency_key": m.key, **self._payload(m)} for m in messages]}
        try:
            r = self._call(
                keys[0], "POST", "/v1/message-batches", json=payload, headers=self.headers
            )
        except TemporaryFailure as e:
            return [TemporaryFailure(str(e), key=k, code=e.code) for k in keys]
        if r.status_code == 200:
            return self._batch_results(r, messages)
        problem = _problem(r)
        text = _redact(_describe(r, problem), *(m.recipient for m in messages))
        if r.status_code in (401, 403):
            return [TemporaryFailure(text, key=k, code="unauthorized") for k in keys]
        bad = _item_fields(r, problem) if r.status_code in (400, 422) else None
        code = f"rejected_{r.status_code}"
        if not bad or len(bad) == len(messages):
            return [PermanentFailure(text, key=k, code=code) for k in keys]
        return [
            PermanentFailure(text, key=k, code=code)
            if i in bad
            else _Named(TemporaryFailure(text, key=k, code="refused_with_others"))
            for i, k in enumerate(keys)
        ]

    def _batch_results(
        self, r: httpx.Response, messages: Sequence[MailboxMessage]
    ) -> list[Receipt | ChannelError]:
        body = _problem(r)
        by_key = {
            str(e.get("idempotency_key")): e
            for e in body.get("results") or []
            if isinstance(e, dict)
        }
        out: list[Receipt | ChannelError] = []
        for m in messages:
            e = by_key.get(m.key)
            status = e.get("status") if e else None
            if e is None or not isinstance(status, int):
                out.append(
                    TemporaryFailure("mailbox service gave no result", key=m.key, code="no_answer")
                )
            elif status in (200, 201) and e.get("id"):
                out.append(Receipt(key=m.key, provider_id=str(e["id"]), status="sent"))
            elif status in (200, 201):
                out.append(
                    TemporaryFailure(
                        f"mailbox service answered {status} without an id",
                        key=m.key,
                        code="bad_answer",
                    )
                )
            else:
                out.append(self._item_refusal(m, status, e.get("problem")))
        return out

    def _item_refusal(self, m: MailboxMessage, status: int, problem: Any) -> ChannelError:
        p = problem if isinstance(problem, dict) else {}
        head = " — ".join(str(p[k]) for k in ("title", "detail") if p.get(k))
        notes = "; ".join(
            f"{e.get('field', '?')}: {e.get('message', '')}"
            for e in p.get("errors") or []
            if isinstance(e, dict)
        )
        text = _redact(
            ": ".join(x for x in (f"mailbox service answered {status}", head, notes) if x),
            m.recipient,
        )
        if status in _ITEM_RETRYABLE:
            code = "rate_limited" if status == 429 else "unavailable"
            return TemporaryFailure(text, key=m.key, code=code)
        if status == 404 and str(p.get("type", "")).endswith("/no-account"):
            return PermanentFailure(text, key=m.key, code="no_account")
        return PermanentFailure(text, key=m.key, code=f"rejected_{status}")

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


class _Named:
    """A message refused only because another of its batch was: it is sent again once."""

    def __init__(self, error: ChannelError) -> None:
        self.error = error
