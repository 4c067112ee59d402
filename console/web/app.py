"""The web console: server-rendered pages for advisers, supervisors, échelon leads and managers.

This module only builds the application (state, session middleware, error pages) and serves
one router per page group; the routes live in `routes_*.py`, what they depend on in `deps.py`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles

from campaigns.clock import utcnow
from campaigns.definition.model import DefinitionError
from campaigns.ledger.audit import record
from campaigns.ledger.db import get_engine
from campaigns.settings import Settings, get_settings
from console.web import (
    routes_board,
    routes_calls,
    routes_campaigns,
    routes_drafts,
    routes_email_events,
    routes_login,
    routes_phone,
    routes_preview,
    routes_results,
    routes_runs,
)
from console.web.deps import TEMPLATES, LoginRequired
from console.web.headers import NONCE, SecurityHeaders
from console.web.sessions import ROW, ServerSessions
from console.web.throttle import LoginThrottle, parse_proxies

STATIC = Path(__file__).parent / "static"

# The State's design system, installed by scripts/setup.sh from npm (tools/ui, git-ignored).
DSFR = Path(__file__).parents[2] / "tools" / "ui" / "node_modules" / "@gouvfr" / "dsfr" / "dist"

log = logging.getLogger(__name__)

ROUTERS = (
    routes_login.router,
    routes_campaigns.router,
    routes_drafts.router,
    routes_runs.router,
    routes_preview.router,
    routes_calls.router,
    routes_board.router,
    routes_results.router,
    routes_phone.router,
    routes_email_events.router,
)


def _routes() -> list[BaseRoute]:
    """Every page group's routes, in one flat list."""
    # Since FastAPI 0.137 `include_router` leaves one opaque node per router in `app.routes`;
    # the routers have no prefix nor dependencies of their own, so their routes are served as
    # they are and `app.routes` still lists every page (the authorisation matrix walks it).
    return [route for router in ROUTERS for route in router.routes]


def _audit_denial(request: Request, exc: StarletteHTTPException) -> None:
    """Record a refusal (who, what, why): the path only, never a query string nor a body, so
    no NIR or phone number reaches the log; in its own transaction (the page's rolled back)."""
    row = request.scope.get(ROW)
    who = getattr(request.state, "username", None) or (row.username if row else "anonyme")
    with Session(request.app.state.engine) as s:
        record(
            session=s,
            actor=who[:64],
            action="access_denied",
            target=request.url.path[:128],
            detail={"status": exc.status_code, "method": request.method, "why": str(exc.detail)},
            now=request.app.state.clock(),
        )
        s.commit()


_FRENCH = {"Not Found": "cette page n'existe pas", "Method Not Allowed": "méthode non permise"}


async def http_error(request: Request, exc: Exception) -> Response:
    """401 → the login page; any other HTTP error → the error page; denials are audited."""
    assert isinstance(exc, StarletteHTTPException)
    stale = isinstance(exc, LoginRequired) and exc.stale is not None
    if exc.status_code == 403 or stale:
        await run_in_threadpool(_audit_denial, request, exc)
    if exc.status_code == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    page = TEMPLATES.get_template("error.html").render(
        status=exc.status_code,
        # Starlette's own words for a missing route or method, in French.
        why=_FRENCH.get(str(exc.detail), exc.detail),
        user=None,
        csrf="",
        csp_nonce=getattr(request.state, NONCE, ""),
        dsfr=getattr(request.app.state, "dsfr", False),
    )
    return HTMLResponse(page, status_code=exc.status_code)


async def unknown_campaign(request: Request, exc: Exception) -> Response:
    """An unknown campaign id in a URL is a 404; a broken campaign folder stays a server error."""
    if not str(exc).startswith("aucune campagne "):
        raise exc  # a broken campaign folder is a server error, not the user's
    return await http_error(request, HTTPException(status_code=404, detail="campagne inconnue"))


def _mount_static(app: FastAPI) -> None:
    """The pages' own scripts and styles, and DSFR's dist under /static/dsfr/ when installed."""
    # /static/dsfr is mounted first: Starlette serves the first mount whose prefix matches.
    app.state.dsfr = DSFR.is_dir()
    if app.state.dsfr:
        app.mount("/static/dsfr", StaticFiles(directory=DSFR), name="dsfr")
    else:
        # The pages stay usable (plain HTML) so a machine without npm can still run the console.
        log.warning("DSFR absent (%s): run scripts/setup.sh; pages served without its styles", DSFR)
    # The pages' scripts (no inline script: the Content-Security-Policy forbids them).
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The console application."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Relance console",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.openapi else None,
        routes=_routes(),
    )
    app.state.settings = settings
    _mount_static(app)
    app.state.engine = engine or get_engine(settings.resolved_database_url())
    app.state.clock = utcnow
    app.state.login_throttle = LoginThrottle(
        settings.login_max_failures_per_address,
        timedelta(minutes=settings.login_throttle_minutes),
        max_per_account=settings.login_max_failures_per_account,
    )
    app.state.trusted_proxies = parse_proxies(settings.trusted_proxies)
    secret = settings.resolved_secret_key()
    app.state.csrf_key = secret.encode()
    secure = settings.cookie_secure or settings.public_base_url.startswith("https://")
    app.add_middleware(
        ServerSessions, secret_key=secret, hours=settings.session_hours, secure=secure
    )
    app.add_middleware(SecurityHeaders)
    # Starlette's own 404 (no such route) gets the French error page too, not a JSON body.
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DefinitionError, unknown_campaign)
    return app
