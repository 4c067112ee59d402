"""The supervisor's board, the adviser page's heartbeat, and finding a person by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from campaigns.app.people import SearchError, search_people
from campaigns.calls.board import board_rows, touch
from campaigns.ledger.models import User
from console.web.deps import CSRF, Adviser, Now, SessionDep, Supervisor, render, roles

router = APIRouter()

# Who may look a person up by name (to record an opposition phoned in).
Searcher = Annotated[User, roles("supervisor", "campaign_manager")]


@router.get("/board", response_class=HTMLResponse)
def board(request: Request, user: Supervisor, s: SessionDep, now: Now) -> HTMLResponse:
    return render(request, "board.html", user, rows=board_rows(session=s, now=now), now=now)


@router.get("/board/partial", response_class=HTMLResponse)
def board_partial(request: Request, user: Supervisor, s: SessionDep, now: Now) -> HTMLResponse:
    rows = board_rows(session=s, now=now)
    return render(request, "board_partial.html", user, rows=rows, now=now)


@router.post("/presence", dependencies=CSRF)
def presence(user: Adviser, s: SessionDep, now: Now) -> Response:
    """The adviser page's heartbeat (static/presence.js, every 20 s)."""
    touch(session=s, username=user.username, now=now)
    return Response(status_code=204)


@router.get("/people", response_class=HTMLResponse)
def people_search(
    request: Request,
    user: Searcher,
    s: SessionDep,
    now: Now,
    nom: str = "",
    naissance: str = "",
    code_postal: str = "",
) -> HTMLResponse:
    found, error, asked = [], None, bool(nom or naissance or code_postal)
    if asked:
        try:
            found = search_people(
                session=s,
                actor=user.username,
                nom=nom,
                birth=naissance,
                postcode=code_postal,
                now=now,
            )
        except SearchError as e:
            error = str(e)
    return render(
        request,
        "people.html",
        user,
        found=found,
        error=error,
        asked=asked,
        q={"nom": nom, "naissance": naissance, "code_postal": code_postal},
    )
