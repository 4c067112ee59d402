"""Twilio agent-bridged calls: ring the adviser's line, then dial the person from the platform.

The insured person's leg reports its progress through the <Number> status callback
attributes of the TwiML; `status_callback_event` is not sent on `calls.create` (one fewer
repeated form key, which also keeps contract mocks happy).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import requests
from twilio.base import values
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from channels.base import PermanentFailure, Receipt, TemporaryFailure
from channels.phone import BridgeCall, check_callee
from channels.resilience import (
    RETRYABLE_STATUS,
    Backoff,
    RateLimiter,
    Retryable,
    parse_retry_after,
)

TWILIO_API = "https://api.twilio.com"
CALLEE_EVENTS = "initiated ringing answered completed"

# The SDK logs each request at INFO; numbers travel in the form body (not logged), but keep
# its chatter out of the application logs anyway.
_quiet = logging.getLogger("relance.twilio_http")
_quiet.setLevel(logging.WARNING)


class RoutedHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, sent to `api_base` instead of api.twilio.com when given."""

    def __init__(self, api_base: str | None = None, timeout: float = 15.0) -> None:
        super().__init__(timeout=timeout, logger=_quiet)
        self.api_base = api_base.rstrip("/") if api_base else None
        self._mine = threading.local()

    @property
    def last(self) -> Response | None:
        """This thread's last response (the SDK's exceptions drop the body and headers)."""
        last: Response | None = getattr(self._mine, "response", None)
        return last

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Forward to the real client, rewriting the host."""
        if self.api_base and url.startswith(TWILIO_API):
            url = self.api_base + url[len(TWILIO_API) :]
        self._mine.response = None
        response = super().request(
            method, url, params, data, headers, auth, timeout, allow_redirects
        )
        self._mine.response = response
        return response


def twiml(call: BridgeCall, caller_id: str, status_callback: str) -> str:
    """What Twilio does once the adviser picks up: dial the person, reporting their leg."""
    query = f"{call.callback_query}&leg=callee" if call.callback_query else "leg=callee"
    response = VoiceResponse()
    dial = Dial(caller_id=caller_id)
    dial.number(
        call.callee,
        status_callback_event=CALLEE_EVENTS,
        status_callback=f"{status_callback}?{query}",
        status_callback_method="POST",
    )
    response.append(dial)
    return str(response)


def _explain(e: TwilioRestException | TwilioServiceException, last: Response | None) -> str:
    """Twilio's code and message, or the contract's validation messages when that is all."""
    parts: list[str] = []
    body: Any = None
    if last is not None:
        try:
            body = json.loads(last.text)
        except ValueError:
            body = None
    if isinstance(body, dict):
        if body.get("message"):
            parts.append(str(body["message"]))
        for v in [*(body.get("validation") or []), *(body.get("errors") or [])]:
            if isinstance(v, dict) and (v.get("message") or v.get("detail")):
                parts.append(str(v.get("message") or v.get("detail")))
        if not parts and body.get("detail"):
            parts.append(str(body["detail"]))
    if not parts:
        parts.append(str(getattr(e, "msg", None) or getattr(e, "title", "")))
    code = f" code {e.code}" if e.code and e.code != e.status else ""
    return f"Twilio refused the call ({e.status}{code}): " + "; ".join(parts)


class TwilioPhone:
    """Agent-bridged calls through Twilio's Calls API, rate limited, retried with backoff."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        caller_id: str,
        status_callback: str,
        api_base: str | None = None,
        per_second: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.http = RoutedHttpClient(api_base)
        self.client = Client(account_sid, auth_token, http_client=self.http)
        self.caller_id, self.status_callback = caller_id, status_callback
        self.limiter = RateLimiter(per_second)
        self.backoff = backoff or Backoff()

    def bridge(self, call: BridgeCall) -> Receipt:
        """Place the call; 429/5xx and lost connections are retried, then TemporaryFailure."""
        check_callee(call)
        try:
            sid = self.backoff.run(lambda: self._create(call))
        except Retryable as e:
            raise TemporaryFailure(
                f"Twilio unavailable after {self.backoff.attempts} tries: {e}",
                key=call.key,
                code=f"http_{e.status}" if e.status else "unreachable",
            ) from None
        return Receipt(key=call.key, provider_id=sid, status="queued")

    def _create(self, call: BridgeCall) -> str:
        self.limiter.acquire()
        query = f"?{call.callback_query}" if call.callback_query else ""
        try:
            created = self.client.calls.create(
                # No line, no `To`: Twilio (or its contract) says what is missing.
                to=call.adviser_line or values.unset,
                from_=self.caller_id,
                twiml=twiml(call, self.caller_id, self.status_callback),
                status_callback=self.status_callback + query,
                status_callback_method="POST",
            )
        except (TwilioRestException, TwilioServiceException) as e:
            last = self.http.last
            if e.status in RETRYABLE_STATUS:
                after = parse_retry_after(last.headers.get("Retry-After")) if last else None
                raise Retryable(
                    f"Twilio answered {e.status}", retry_after=after, status=e.status
                ) from None
            raise PermanentFailure(
                _explain(e, last), key=call.key, code=f"http_{e.status}"
            ) from None
        except requests.RequestException as e:
            raise Retryable(f"Twilio unreachable ({type(e).__name__})") from None
        return str(created.sid)
