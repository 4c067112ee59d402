"""SendGrid v3 Mail Send: the notification e-mails, batched by identical content.

Every recipient is one personalization carrying its idempotency key in `custom_args`, so the
Event Webhook can match delivery, bounce and open events back to the outbox row.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from channels.base import ChannelError, PermanentFailure, Receipt, TemporaryFailure
from channels.email import EmailMessage, check_address
from channels.resilience import RETRYABLE_STATUS, Backoff, RateLimiter, Retryable, parse_retry_after

MAX_BATCH = 1000  # SendGrid's limit of personalizations per request
KEY_ARG = "relance_key"
_ADDRESS = re.compile(r"[^\s<>\"'@,;:]+@[^\s<>\"',;:]+")
_PERSONALIZATION = re.compile(r"^personalizations\.(\d+)\b")
log = logging.getLogger(__name__)


class _NoPayloads(logging.Filter):
    """python_http_client logs request bodies (addresses) and headers (API key) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


logging.getLogger("python_http_client.client").addFilter(_NoPayloads())


def redact(text: str) -> str:
    """Text from the provider with any e-mail address blanked out."""
    return _ADDRESS.sub("<address>", text)


def _violations(headers: Any) -> list[tuple[str, str]]:
    """(field, message) pairs a contract mock (Prism) puts in its `sl-violations` header."""
    # Prism answers the spec's example error body; the real findings are only in this header.
    try:
        found = json.loads((headers or {}).get("sl-violations") or "[]")
    except ValueError:
        return []
    return [
        (
            ".".join(str(p) for p in v.get("location") or [] if p not in ("request", "body")),
            str(v.get("message") or ""),
        )
        for v in found
        if isinstance(v, dict)
    ]


def _errors(body: Any) -> list[tuple[str, str]]:
    """(field, message) pairs from a SendGrid error body."""
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body or "")
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        return [("", text.strip()[:300])] if text.strip() else []
    if not isinstance(data, dict):
        return [("", str(data)[:300])]
    out = [
        (str(e.get("field") or ""), str(e.get("message") or ""))
        for e in data.get("errors") or []
        if isinstance(e, dict)
    ]
    if not out and (data.get("detail") or data.get("title")):
        out.append(("", str(data.get("detail") or data.get("title"))))
    return out


def describe(status: int, errors: list[tuple[str, str]]) -> str:
    """A readable refusal: `SendGrid refused the request (400): from.email: ...`."""
    said = "; ".join(f"{f}: {m}" if f else m for f, m in errors) or "no error detail"
    return redact(f"SendGrid refused the request ({status}): {said}")


class SendGridEmail:
    """Sends each batch of same-content messages as few Mail Send requests as SendGrid allows."""

    def __init__(
        self,
        api_key: str,
        host: str,
        sender: str,
        per_second: float = 10.0,
        batch_size: int = MAX_BATCH,
        backoff: Backoff | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        self.client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/"))
        self.sender, self.batch_size, self.timeout = sender, batch_size, timeout
        self.limiter = RateLimiter(per_second)
        self.backoff = backoff or Backoff()

    def send(self, messages: Sequence[EmailMessage]) -> list[Receipt | ChannelError]:
        """One request per chunk of identical content; results line up with `messages`."""
        out: list[Receipt | ChannelError | None] = [None] * len(messages)
        groups: dict[tuple[str, str, str | None], list[int]] = {}
        for i, m in enumerate(messages):
            err = check_address(m)
            if err:
                out[i] = err
            else:
                groups.setdefault((m.subject, m.text, m.html), []).append(i)
        for (subject, text, html), idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                results = self._send_chunk([messages[i] for i in chunk], subject, text, html)
                for i, r in zip(chunk, results, strict=True):
                    out[i] = r
        return [r for r in out if r is not None]

    def body(
        self, messages: Sequence[EmailMessage], subject: str, text: str, html: str | None
    ) -> dict[str, Any]:
        """The v3 Mail Send body: one personalization (and key) per recipient."""
        content = [{"type": "text/plain", "value": text}]
        if html:
            content.append({"type": "text/html", "value": html})
        return {
            "personalizations": [
                {"to": [{"email": m.to}], "custom_args": {KEY_ARG: m.key}} for m in messages
            ],
            "from": {"email": self.sender},
            "subject": subject,
            "content": content,
        }

    def _send_chunk(
        self, messages: Sequence[EmailMessage], subject: str, text: str, html: str | None
    ) -> list[Receipt | ChannelError]:
        results = self.post(self.body(messages, subject, text, html), [m.key for m in messages])
        # SendGrid refuses a whole request for one bad personalization: fail only the ones it
        # names and send the others again, once.
        named = {i for i, r in enumerate(results) if getattr(r, "code", "") == "refused_recipient"}
        if named and len(named) < len(messages):
            rest = [i for i in range(len(messages)) if i not in named]
            again = self.post(
                self.body([messages[i] for i in rest], subject, text, html),
                [messages[i].key for i in rest],
            )
            for i, r in zip(rest, again, strict=True):
                results[i] = r
        return results

    def post(self, body: dict[str, Any], keys: Sequence[str]) -> list[Receipt | ChannelError]:
        """One Mail Send request (retried on 429/5xx); one result per key, in order."""

        def call() -> Any:
            self.limiter.acquire()
            try:
                return self.client.client.mail.send.post(request_body=body, timeout=self.timeout)
            except HTTPError as e:
                if e.status_code in RETRYABLE_STATUS:
                    headers = e.headers or {}
                    raise Retryable(
                        f"SendGrid answered {e.status_code}",
                        retry_after=parse_retry_after(headers.get("Retry-After")),
                        status=e.status_code,
                    ) from None
                raise
            except (OSError, http.client.HTTPException) as e:
                raise Retryable(f"SendGrid unreachable: {type(e).__name__}") from None

        try:
            response = self.backoff.run(call)
        except Retryable as e:
            log.warning("SendGrid request of %d messages not sent: %s", len(keys), e)
            return [TemporaryFailure(f"{e}; will try again", key=k) for k in keys]
        except HTTPError as e:
            return self._refused(e.status_code, _violations(e.headers) or _errors(e.body), keys)
        message_id = (response.headers or {}).get("X-Message-Id")
        return [
            Receipt(key=k, provider_id=f"{message_id}.{i}" if message_id else k, status="sent")
            for i, k in enumerate(keys)
        ]

    def _refused(
        self, status: int, errors: list[tuple[str, str]], keys: Sequence[str]
    ) -> list[Receipt | ChannelError]:
        log.warning("SendGrid refused a request of %d messages (%d)", len(keys), status)
        message = describe(status, errors)
        scoped = bool(errors) and all(_PERSONALIZATION.match(f) for f, _ in errors)
        bad = {int(m.group(1)) for f, _ in errors if (m := _PERSONALIZATION.match(f))}
        out: list[Receipt | ChannelError] = []
        for i, k in enumerate(keys):
            if not scoped or not bad:
                out.append(PermanentFailure(message, key=k, code=f"sendgrid_{status}"))
            elif i in bad:
                out.append(PermanentFailure(message, key=k, code="refused_recipient"))
            else:
                # Refused only because another recipient of the same request was.
                out.append(TemporaryFailure(message, key=k, code="refused_with_others"))
        return out
