"""Login, logout and the home page (each role lands on its own page)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaigns.calls.queue import release_all
from campaigns.ledger.accounts import authenticate
from campaigns.ledger.audit import record
from console.web.deps import (
    CSRF,
    CurrentUser,
    Now,
    SessionDep,
    render,
    start_session,
    stop_session,
)
from console.web.throttle import LoginThrottle, client_address

HOME = {
    "adviser": "/calls",
    "supervisor": "/board",
    "campaign_manager": "/campaigns",
    "echelon_lead": "/campaigns",
    "regional_lead": "/campaigns",
    "admin": "/campaigns",
}

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", next=next, error=None)


@router.post("/login", dependencies=CSRF, response_model=None)
def login(
    request: Request,
    s: SessionDep,
    now: Now,
    username: str = Form(...),
    password: str = Form(...),
    next: str = Form("/"),
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    peer = request.client.host if request.client else "unknown"
    address = client_address(
        peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_proxies
    )
    account = username[:64]
    wait = throttle.retry_after(address, now, account)
    if wait is not None:
        whom = "ce compte" if throttle.account_blocked(account, now) else "ce poste"
        record(
            session=s,
            actor=account,
            action="login_throttled",
            target="console",
            detail={"address": address},
        )
        page = render(
            request,
            "login.html",
            next=next,
            error=f"Trop de tentatives pour {whom} : réessayez dans {wait // 60 + 1} min.",
        )
        page.status_code = 429
        page.headers["Retry-After"] = str(wait)
        return page
    user = authenticate(session=s, username=username, password=password, now=now)
    if user is None:
        throttle.failed(address, now, account)
        record(
            session=s,
            actor=account,
            action="login_failed",
            target="console",
            detail={"address": address},
        )
        return render(
            request, "login.html", next=next, error="Identifiant ou mot de passe incorrect."
        )
    start_session(request, s, user, now)  # a new session id at login: no fixation
    record(session=s, actor=user.username, action="login", target="console")
    target = next if _same_site(next) else "/"
    return RedirectResponse(target if target != "/" else HOME[user.role], status_code=303)


def _same_site(target: str) -> bool:
    """Whether a `next` address stays on this site: a path, never `//host` nor `/\\host`,
    which browsers read as another site (a link to our login would send the user there)."""
    parts = urlsplit(target)
    return (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 32 for c in target)
        and not parts.scheme
        and not parts.netloc
    )


@router.post("/logout", dependencies=CSRF)
def logout(request: Request, user: CurrentUser, s: SessionDep, now: Now) -> Response:
    release_all(session=s, adviser=user.username)
    record(session=s, actor=user.username, action="logout", target="console")
    stop_session(request, s, now)
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(user: CurrentUser) -> Response:
    return RedirectResponse(HOME[user.role], status_code=303)
