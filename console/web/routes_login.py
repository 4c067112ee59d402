"""Login, logout and the home page (each role lands on its own page)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaigns.calls.queue import release_all
from campaigns.ledger.accounts import authenticate
from campaigns.ledger.audit import record
from console.web.deps import CSRF, CurrentUser, Now, SessionDep, csrf_token, render
from console.web.throttle import LoginThrottle

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


@router.post("/logout", dependencies=CSRF)
def logout(request: Request, user: CurrentUser, s: SessionDep) -> Response:
    release_all(session=s, adviser=user.username)
    record(session=s, actor=user.username, action="logout", target="console")
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(user: CurrentUser) -> Response:
    return RedirectResponse(HOME[user.role], status_code=303)
