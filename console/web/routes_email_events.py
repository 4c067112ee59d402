"""SendGrid's Event Webhook: signed (ECDSA P-256) batches of e-mail events for the outbox.

No login and no CSRF token: the signature over timestamp + raw body is the authentication,
and the timestamp window refuses old requests replayed; events already applied are
recognised by their id, so a replay inside the window changes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from campaigns.feedback.email_events import apply_events

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
log = logging.getLogger(__name__)
router = APIRouter()


def _refuse(status: int, why: str) -> Response:
    log.warning("SendGrid webhook refused (%d): %s", status, why)
    return PlainTextResponse(why, status_code=status)


def verified(*, public_key: str | None, body: bytes, signature: str, timestamp: str) -> bool:
    """Whether SendGrid signed `timestamp + body` with the key configured."""
    if not public_key or not signature or not timestamp:
        return False
    hook = EventWebhook()
    try:
        key = hook.convert_public_key_to_ecdsa(public_key)
        return bool(hook.verify_signature(body.decode("utf-8"), signature, timestamp, key))
    except (ValueError, TypeError, UnicodeDecodeError):
        # A malformed key, signature or body is no valid signature.
        return False


@router.post("/webhooks/sendgrid/events")
async def sendgrid_events(request: Request) -> Response:
    settings = request.app.state.settings
    body = await request.body()
    signature = request.headers.get(SIGNATURE, "")
    timestamp = request.headers.get(TIMESTAMP, "")
    if not settings.sendgrid_webhook_public_key:
        return _refuse(403, "no SendGrid webhook key configured")
    if not signature or not timestamp:
        return _refuse(403, "missing signature")
    now = request.app.state.clock()
    try:
        age = now.timestamp() - int(timestamp)
    except ValueError:
        return _refuse(403, "bad timestamp")
    if abs(age) > settings.webhook_max_age_seconds:
        return _refuse(403, "stale or future timestamp (replay?)")
    if not verified(
        public_key=settings.sendgrid_webhook_public_key,
        body=body,
        signature=signature,
        timestamp=timestamp,
    ):
        return _refuse(403, "bad signature")
    try:
        events: Any = json.loads(body)
    except ValueError:
        return _refuse(400, "body is not JSON")
    if not isinstance(events, list):
        return _refuse(400, "body is not a list of events")

    def apply() -> dict[str, int]:
        with Session(request.app.state.engine) as s:
            counts = apply_events(session=s, events=events, now=now)
            s.commit()
            return counts

    counts = await run_in_threadpool(apply)
    log.info("SendGrid events applied: %s", counts)
    return Response(status_code=204)
