"""The web console: server-rendered pages for advisers, supervisors, échelon leads and managers.

Sessions are signed cookies (itsdangerous, via Starlette), renewed at login so a session id
cannot be fixed in advance; every form carries a CSRF token bound to the session; each
route names the roles it admits and checks the user's scope (a forbidden page is a 403).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.middleware.sessions import SessionMiddleware

from campaigns.clock import utcnow
from campaigns.definition.model import DefinitionError
from campaigns.definition.reasons import explain
from campaigns.ledger.accounts import authenticate
from campaigns.ledger.audit import record
from campaigns.ledger.db import get_engine
from campaigns.ledger.models import User
from campaigns.settings import Settings, get_settings
from console.web.throttle import LoginThrottle

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# `{{ code|reason }}`: a reason code in the words of campaigns.definition.reasons.
TEMPLATES.env.filters["reason"] = explain
HOME = {
    "adviser": "/calls",
    "supervisor": "/board",
    "campaign_manager": "/campaigns",
    "echelon_lead": "/campaigns",
    "regional_lead": "/campaigns",
    "admin": "/campaigns",
}

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


def current_user(request: Request, s: Session = Depends(db)) -> User:
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


def roles(*allowed: str) -> Any:
    """A dependency admitting only these roles (admin is always admitted)."""

    def check(user: User = Depends(current_user)) -> User:
        if user.role not in allowed and user.role != "admin":
            raise Forbidden(f"role {user.role} cannot open this page")
        return user

    return Depends(check)


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


def render(request: Request, name: str, user: User | None = None, **ctx: Any) -> HTMLResponse:
    """A page with the user and the CSRF token in its context."""
    return TEMPLATES.TemplateResponse(
        request, name, {"user": user, "csrf": csrf_token(request), **ctx}
    )


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The console application."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Relance console",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.openapi else None,
    )
    app.state.settings = settings
    app.state.engine = engine or get_engine(settings.resolved_database_url())
    app.state.clock = utcnow
    app.state.login_throttle = LoginThrottle(
        settings.login_max_failures_per_address,
        timedelta(minutes=settings.login_throttle_minutes),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie="relance_session",
        max_age=settings.session_hours * 3600,
        same_site="strict",
        https_only=settings.cookie_secure,
    )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        page = TEMPLATES.get_template("error.html").render(
            status=exc.status_code, why=exc.detail, user=None, csrf=""
        )
        return HTMLResponse(page, status_code=exc.status_code)

    @app.exception_handler(DefinitionError)
    async def unknown_campaign(request: Request, exc: DefinitionError) -> Response:
        if not str(exc).startswith("no campaign "):
            raise exc  # a broken campaign folder is a server error, not the user's
        return await http_error(request, HTTPException(status_code=404, detail="unknown campaign"))

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", next=next, error=None)

    @app.post("/login", dependencies=[Depends(check_csrf)], response_model=None)
    def login(
        request: Request,
        username: str = Form(...),
        password: str = Form(...),
        next: str = Form("/"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> Response:
        throttle: LoginThrottle = request.app.state.login_throttle
        address = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(address, now)
        if wait is not None:
            record(session=s, actor=username[:64], action="login_throttled", target="console")
            page = render(
                request,
                "login.html",
                next=next,
                error=f"Trop de tentatives depuis ce poste : réessayez dans {wait // 60 + 1} min.",
            )
            page.status_code = 429
            page.headers["Retry-After"] = str(wait)
            return page
        user = authenticate(session=s, username=username, password=password, now=now)
        if user is None:
            throttle.failed(address, now)
            record(session=s, actor=username[:64], action="login_failed", target="console")
            return render(
                request, "login.html", next=next, error="Identifiant ou mot de passe incorrect."
            )
        request.session.clear()  # a new session at login: no fixation
        request.session.update({"uid": user.id, "issued": time.time()})
        csrf_token(request)
        record(session=s, actor=user.username, action="login", target="console")
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        return RedirectResponse(target if target != "/" else HOME[user.role], status_code=303)

    @app.post("/logout", dependencies=[Depends(check_csrf)])
    def logout(
        request: Request, user: User = Depends(current_user), s: Session = Depends(db)
    ) -> Response:
        from campaigns.calls.queue import release_all

        release_all(session=s, adviser=user.username)
        record(session=s, actor=user.username, action="logout", target="console")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.get("/")
    def home(user: User = Depends(current_user)) -> Response:
        return RedirectResponse(HOME[user.role], status_code=303)

    from console.web import (
        routes_calls,
        routes_campaigns,
        routes_email_events,
        routes_phone,
        routes_results,
    )

    routes_campaigns.add_routes(app)
    routes_calls.add_routes(app)
    routes_results.add_routes(app)
    routes_phone.add_routes(app)
    routes_email_events.add_routes(app)
    return app
