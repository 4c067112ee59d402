"""What every route depends on: the session, the clock, the current user, CSRF and role checks.

Sessions are signed cookies (itsdangerous, via Starlette), renewed at login so a session id
cannot be fixed in advance; every form carries a CSRF token bound to the session; each
route names the roles it admits and checks the user's scope (a forbidden page is a 403).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlmodel import Session

from campaigns.calls.card import claimed_call
from campaigns.clock import PARIS
from campaigns.definition.reasons import OUTCOME_LABELS, explain
from campaigns.definition.rendering import CHANNEL_LABELS
from campaigns.ledger.models import Action, User
from campaigns.ledger.vocabulary import ACTION_STATE_LABELS

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# `{{ code|reason }}`: a reason code in the words of campaigns.definition.reasons.
TEMPLATES.env.filters["reason"] = explain
# `{{ a.outcome|outcome }}`: a call's outcome code in French; `{{ t|paris }}`: a UTC moment
# shown as Paris wall-clock time (HH:MM:SS).
TEMPLATES.env.filters["outcome"] = lambda code: OUTCOME_LABELS.get(code, code) if code else ""
TEMPLATES.env.filters["action_state"] = lambda v: ACTION_STATE_LABELS.get(v, v)
TEMPLATES.env.filters["channel"] = lambda v: CHANNEL_LABELS.get(v, v)
TEMPLATES.env.filters["paris"] = lambda t, fmt="%H:%M:%S": t.astimezone(PARIS).strftime(fmt)

# A row id in a path or a form: beyond 64 bits the database cannot even look it up (a 500).
RowId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
FormRowId = Annotated[int, Form(ge=1, le=2**63 - 1)]


class Forbidden(HTTPException):
    """A page or action the user's role or scope does not allow."""

    def __init__(self, why: str = "forbidden") -> None:
        super().__init__(status_code=403, detail=why)


def clock(request: Request) -> datetime:
    """Now, from the app's clock (tests and the demo set it)."""
    now: datetime = request.app.state.clock()
    return now


def engine_of(request: Request) -> Engine:
    """The app's database engine."""
    engine: Engine = request.app.state.engine
    return engine


def db(request: Request) -> Iterator[Session]:
    """A session committed when the request succeeds."""
    with Session(engine_of(request)) as s:
        yield s
        s.commit()


SessionDep = Annotated[Session, Depends(db)]
Now = Annotated[datetime, Depends(clock)]


def current_user(request: Request, s: SessionDep) -> User:
    """The logged-in user (401 → login page when there is none or the session expired)."""
    uid = request.session.get("uid")
    issued = request.session.get("issued", 0)
    ttl = request.app.state.settings.session_hours * 3600
    if uid is None or time.time() - issued > ttl:
        request.session.clear()
        raise HTTPException(status_code=401, detail="login required")
    user = s.get(User, uid)
    if user is None or not user.active:
        request.session.clear()
        raise HTTPException(status_code=401, detail="login required")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def roles(*allowed: str) -> Any:
    """A dependency admitting only these roles (admin is always admitted)."""

    def check(user: CurrentUser) -> User:
        if user.role not in allowed and user.role != "admin":
            raise Forbidden(f"role {user.role} cannot open this page")
        return user

    return Depends(check)


Adviser = Annotated[User, roles("adviser")]
Supervisor = Annotated[User, roles("supervisor")]
CampaignManager = Annotated[User, roles("campaign_manager")]


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request without the session's token (form field or header)."""
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise Forbidden("missing or wrong CSRF token")


CSRF = [Depends(check_csrf)]


def own_call(s: Session, aid: int, user: User) -> Action:
    """The call this adviser holds, or 403."""
    a = claimed_call(session=s, action_id=aid, adviser=user.username)
    if a is None:
        raise Forbidden("this call is not yours")
    return a


def render(request: Request, name: str, user: User | None = None, **ctx: Any) -> HTMLResponse:
    """A page with the user and the CSRF token in its context."""
    return TEMPLATES.TemplateResponse(
        request, name, {"user": user, "csrf": csrf_token(request), **ctx}
    )
