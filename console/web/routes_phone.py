"""Click-to-call from the call card, and Twilio's signed status callbacks."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from campaigns.calls.telephony import DialError, latest_call, record_status, start_call
from campaigns.ledger.audit import record
from console.web.deps import CSRF, Adviser, Forbidden, Now, RowId, SessionDep, engine_of, own_call
from flows.adapters import build_phone

router = APIRouter()


def phone_of(request: Request) -> Any:
    """The app's telephony: set by tests or the demo, else built from the settings once."""
    phone = getattr(request.app.state, "phone", None)
    if phone is None:
        phone = request.app.state.phone = build_phone(request.app.state.settings)
    return phone


def public_url(request: Request) -> str:
    """The URL Twilio called (and signed), not the one this process sees behind a proxy."""
    base = str(request.app.state.settings.public_base_url).rstrip("/")
    query = request.url.query
    return base + request.url.path + (f"?{query}" if query else "")


@router.post("/calls/{aid}/dial", dependencies=CSRF)
def dial(
    request: Request,
    aid: RowId,
    user: Adviser,
    s: SessionDep,
    now: Now,
) -> Response:
    own_call(s, aid, user)
    if not user.phone_line:
        msg = "aucune ligne téléphonique n'est associée à votre compte (voir un administrateur)"
        return RedirectResponse(f"/calls/{aid}?e={quote(msg)}", status_code=303)
    try:
        call = start_call(
            session=s,
            action_id=aid,
            adviser=user.username,
            adviser_line=user.phone_line,
            phone=phone_of(request),
            now=now,
        )
    except DialError as e:
        record(
            session=s,
            actor=user.username,
            action="dial",
            target=f"action/{aid}",
            detail={"error": str(e)[:200]},
        )
        return RedirectResponse(f"/calls/{aid}?e={quote(str(e))}", status_code=303)
    record(
        session=s,
        actor=user.username,
        action="dial",
        target=f"action/{aid}",
        detail={"call": call.key},
    )
    return RedirectResponse(f"/calls/{aid}", status_code=303)


@router.get("/calls/{aid}/telephony")
def telephony(aid: RowId, user: Adviser, s: SessionDep) -> Response:
    own_call(s, aid, user)
    call = latest_call(session=s, action_id=aid)
    if call is None:
        return JSONResponse({"status": None})
    return JSONResponse(
        {
            "status": call.status,
            "error": call.error,
            "answered_at": call.answered_at.isoformat() if call.answered_at else None,
            "ended_at": call.ended_at.isoformat() if call.ended_at else None,
            "duration_s": call.duration_s,
        }
    )


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request, now: Now) -> Response:
    token = request.app.state.settings.twilio_auth_token
    if not token:
        raise Forbidden("Twilio callbacks are not configured")
    form = await request.form()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    signature = request.headers.get("x-twilio-signature", "")
    if not RequestValidator(str(token)).validate(public_url(request), params, signature):
        raise Forbidden("bad Twilio signature")
    # The query (our key, the leg) is signed as part of the URL: trust it like the form.
    params = {**dict(request.query_params.items()), **params}
    engine = engine_of(request)

    def apply() -> bool:
        with Session(engine) as s:
            record_status(session=s, params=params, now=now)
            s.commit()
        return True

    try:
        await run_in_threadpool(apply)
    except ValueError:
        return Response(status_code=400)
    return Response(status_code=204)
