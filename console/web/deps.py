"""What every route depends on: the session, the clock, the current user, CSRF and role checks.

Sessions are held server-side (`console.web.sessions`, `campaigns.ledger.sessions`): the
cookie carries only a signed id, renewed at login so it cannot be fixed in advance, and
logout or a password change ends the session for good. Every form carries a CSRF token bound
to the session id; each route names the roles it admits and checks the user's scope (a
forbidden page is a 403, audited with every other denial in `app.http_error`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
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

from campaigns.app.run_labels import count_label, stage_label
from campaigns.app.scheduler import Scheduler
from campaigns.calls.card import PAUSED_CALL, claimed_call, released_by_pause
from campaigns.clock import PARIS
from campaigns.definition.reasons import OUTCOME_LABELS, explain
from campaigns.definition.rendering import CHANNEL_LABELS
from campaigns.ledger.models import Action, ConsoleSession, User
from campaigns.ledger.roles import ROLE_LABELS
from campaigns.ledger.sessions import (
    end_session,
    live,
    new_id,
    open_session,
    save_data,
    touch,
)
from campaigns.ledger.vocabulary import ACTION_STATE_LABELS
from console.web.headers import NONCE
from console.web.sessions import LOADED, ROW, SID


def _nonce(request: Request) -> dict[str, Any]:
    """`{{ csp_nonce }}`: the nonce the page's inline scripts and styles carry (CSP)."""
    return {"csp_nonce": getattr(request.state, NONCE, "")}


def _dsfr(request: Request) -> dict[str, Any]:
    """`{{ dsfr }}`: whether the design system is served (else base.html's plain fallback)."""
    return {"dsfr": getattr(request.app.state, "dsfr", False)}


TEMPLATES = Jinja2Templates(
    directory=str(Path(__file__).parent / "templates"), context_processors=[_nonce, _dsfr]
)
# `{{ code|reason }}`: a reason code in the words of campaigns.definition.reasons.
TEMPLATES.env.filters["reason"] = explain
# `{{ a.outcome|outcome }}`: a call's outcome code in French; `{{ t|paris }}`: a UTC moment
# shown as Paris wall-clock time (HH:MM:SS).
TEMPLATES.env.filters["outcome"] = lambda code: OUTCOME_LABELS.get(code, code) if code else ""
TEMPLATES.env.filters["role"] = lambda v: ROLE_LABELS.get(v, v)
TEMPLATES.env.filters["action_state"] = lambda v: ACTION_STATE_LABELS.get(v, v)
TEMPLATES.env.filters["channel"] = lambda v: CHANNEL_LABELS.get(v, v)
TEMPLATES.env.filters["stage_label"] = stage_label
TEMPLATES.env.filters["count_label"] = count_label
# `{{ n|fr_int }}`: a count in French (12 345, narrow no-break space between thousands).
TEMPLATES.env.filters["fr_int"] = lambda n: f"{int(n):,}".replace(",", "\u202f")
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
    """A session committed when the request succeeds (with the console session's data)."""
    with Session(engine_of(request)) as s:
        yield s
        _save_session_data(request, s)
        s.commit()


def _save_session_data(request: Request, s: Session) -> None:
    """Write back what the page changed in `request.session` (only to a live session)."""
    data = dict(request.session)
    if data == request.scope.get(LOADED):
        return
    save_data(session=s, sid=request.scope[SID], data=data)
    request.scope[LOADED] = data


# Committed when the page function returns, before the response leaves: a redirect's next
# request (the card after a reveal, the first page after a login) must find what it wrote.
SessionDep = Annotated[Session, Depends(db, scope="function")]
Now = Annotated[datetime, Depends(clock)]


class LoginRequired(HTTPException):
    """No live session: back to the login page (audited when a session was named but is over)."""

    def __init__(self, stale: str | None = None) -> None:
        super().__init__(status_code=401, detail="connexion requise")
        self.stale = stale  # the username of the ended or expired session presented


def current_user(request: Request, s: SessionDep, now: Now) -> User:
    """The logged-in user (401 → login page when there is none or the session is over)."""
    row: ConsoleSession | None = request.scope.get(ROW)
    if row is None:
        raise LoginRequired()
    if not live(row, now, request.app.state.settings.session_hours):
        request.session.clear()
        raise LoginRequired(stale=row.username)
    user = s.get(User, row.user_id)
    if user is None or not user.active:
        request.session.clear()
        raise LoginRequired(stale=row.username)
    touch(session=s, row=row, now=now)
    request.state.username = user.username
    return user


def start_session(request: Request, s: Session, user: User, now: datetime) -> None:
    """Log this user in: a new server-side session under a new id (no fixation)."""
    request.session.clear()
    request.scope[SID] = open_session(session=s, user=user, now=now)
    request.scope[LOADED] = {}


def stop_session(request: Request, s: Session, now: datetime) -> None:
    """Log out: the session ends server-side; the browser gets a new anonymous id."""
    end_session(session=s, sid=request.scope[SID], now=now)
    request.session.clear()
    request.scope[SID] = new_id()
    request.scope[LOADED] = {}


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
    """The CSRF token of this session id (an HMAC of it under the console's secret key)."""
    key: bytes = request.app.state.csrf_key
    return hmac.new(key, b"csrf|" + request.scope[SID].encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request without the session's token (form field or header)."""
    expected = csrf_token(request)
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
        gone = s.get(Action, aid)
        if gone is not None and released_by_pause(session=s, action=gone):
            raise Forbidden(PAUSED_CALL)
        raise Forbidden("this call is not yours")
    return a


def render(request: Request, name: str, user: User | None = None, **ctx: Any) -> HTMLResponse:
    """A page with the user and the CSRF token in its context."""
    return TEMPLATES.TemplateResponse(
        request, name, {"user": user, "csrf": csrf_token(request), **ctx}
    )


def scheduler_of(request: Request) -> Scheduler | None:
    """The orchestrator of the campaigns' schedules (None: embedded, no Prefect server)."""
    state = request.app.state
    if not hasattr(state, "scheduler"):
        # Prefect loads on the first page that needs it, not with the console.
        from flows.scheduling import scheduler_from_settings

        state.scheduler = scheduler_from_settings()
    found: Scheduler | None = state.scheduler
    return found


SchedulerDep = Annotated[Scheduler | None, Depends(scheduler_of)]
