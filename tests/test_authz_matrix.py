"""The authorisation matrix: every route of the console, for every role and for nobody.

The table below is the matrix; a route added to the app without a line here fails the first
test, so no page can ship without a decision on who may open it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import ROLES
from campaigns.settings import Settings
from console.web.app import create_app

PW = "correct horse battery"
REVIEWERS = {"echelon_lead", "campaign_manager"}
READERS = {"echelon_lead", "regional_lead", "campaign_manager", "supervisor"}
ANY_USER = set(ROLES)

# None: no login (the login page, and the providers' callbacks, which check a signature).
MATRIX: dict[tuple[str, str], set[str] | None] = {
    ("GET", "/login"): None,
    ("POST", "/login"): None,
    ("POST", "/logout"): ANY_USER,
    ("GET", "/"): ANY_USER,
    ("GET", "/campaigns"): REVIEWERS | {"supervisor", "regional_lead"},
    ("GET", "/campaigns/{cid}/validation"): REVIEWERS,
    ("POST", "/campaigns/{cid}/validation/exclude"): REVIEWERS,
    ("POST", "/campaigns/{cid}/validation/revoke"): REVIEWERS,
    ("POST", "/campaigns/{cid}/validation/sign-off"): REVIEWERS,
    ("POST", "/campaigns/{cid}/validation/reopen"): REVIEWERS,
    ("POST", "/campaigns/{cid}/validation/decide"): {"campaign_manager"},
    ("GET", "/campaigns/{cid}/members/{mid}"): {"adviser", "supervisor"} | REVIEWERS,
    ("POST", "/campaigns/{cid}/members/{mid}/opposition"): {
        "adviser",
        "supervisor",
        "campaign_manager",
    },
    ("GET", "/campaigns/{cid}/results"): READERS,
    ("GET", "/campaigns/{cid}/results.csv"): READERS,
    ("GET", "/campaigns/{cid}/results.xlsx"): READERS,
    ("POST", "/campaigns/{cid}/objectives"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/objectives/import"): {"campaign_manager"},
    ("GET", "/campaigns/new"): {"campaign_manager"},
    ("POST", "/campaigns/new"): {"campaign_manager"},
    ("GET", "/campaigns/{cid}"): {"campaign_manager"},
    ("GET", "/campaigns/{cid}/preview"): {"campaign_manager"},
    ("GET", "/campaigns/{cid}/preview/{step}.pdf"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/pause"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/resume"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/end"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/schedule"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/launch"): {"campaign_manager"},
    ("GET", "/campaigns/{cid}/runs"): {"campaign_manager", "supervisor"},
    ("GET", "/campaigns/{cid}/edit"): {"campaign_manager"},
    ("POST", "/campaigns/{cid}/versions"): {"campaign_manager"},
    ("GET", "/drafts/{cid}"): {"campaign_manager"},
    ("POST", "/drafts/{cid}/save"): {"campaign_manager"},
    ("POST", "/drafts/{cid}/upload"): {"campaign_manager"},
    ("POST", "/drafts/{cid}/ready"): {"campaign_manager"},
    ("GET", "/calls"): {"adviser"},
    ("POST", "/calls/next"): {"adviser"},
    ("GET", "/calls/{aid}"): {"adviser"},
    ("POST", "/calls/{aid}/reveal"): {"adviser"},
    ("POST", "/calls/{aid}/renew"): {"adviser"},
    ("POST", "/calls/{aid}/release"): {"adviser"},
    ("POST", "/calls/{aid}/outcome"): {"adviser"},
    ("POST", "/calls/{aid}/dial"): {"adviser"},
    ("GET", "/calls/{aid}/telephony"): {"adviser"},
    ("GET", "/board"): {"supervisor"},
    ("GET", "/board/partial"): {"supervisor"},
    ("POST", "/presence"): {"adviser"},
    ("GET", "/people"): {"supervisor", "campaign_manager"},
    ("POST", "/webhooks/twilio/status"): None,
    ("POST", "/webhooks/sendgrid/events"): None,
}
ROLE_DENIED = "cannot open this page"


def _routes(app: Any) -> set[tuple[str, str]]:
    out = set()
    for r in app.routes:
        if isinstance(r, APIRoute):
            for m in r.methods - {"HEAD"}:
                out.add((m, r.path))
    return out


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from campaigns.ledger.db import make_engine, upgrade

    eng = make_engine(f"sqlite:///{tmp_path / 'authz.db'}")
    upgrade(eng)
    with session_scope(eng) as s:
        for role in ROLES:
            create_user(
                session=s,
                username=role,
                password=PW,
                role=role,
                echelon="75" if role == "echelon_lead" else None,
            )
    yield create_app(
        Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none"),
        engine=eng,
    )
    eng.dispose()


def _client(app: Any, role: str | None) -> tuple[TestClient, str]:
    c = TestClient(app)
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    if role is None:
        return c, token.group(1)
    r = c.post(
        "/login",
        data={"username": role, "password": PW, "csrf": token.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:200]
    fresh = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert fresh
    return c, fresh.group(1)


def _concrete(path: str) -> str:
    return path.replace("{cid}", "sophia-ald8").replace("{mid}", "1").replace("{aid}", "1")


def test_every_route_is_in_the_matrix(app: Any) -> None:
    routes = _routes(app)
    assert routes - set(MATRIX) == set(), "routes without a line in the matrix"
    assert set(MATRIX) - routes == set(), "matrix lines for routes that do not exist"


@pytest.mark.parametrize("role", [*ROLES, None])
def test_each_role_opens_exactly_its_pages(app: Any, role: str | None) -> None:
    client, token = _client(app, role)
    wrong: list[str] = []
    for (method, path), allowed in sorted(MATRIX.items()):
        if allowed is None or path == "/logout":
            continue
        r = client.request(
            method,
            _concrete(path),
            headers={"X-CSRF-Token": token},
            follow_redirects=False,
        )
        denied = r.status_code == 403 and ROLE_DENIED in r.text
        if role is None:
            # Nobody logged in: sent to the login page (or, once the anonymous session is
            # cleared, refused for its CSRF token), never served.
            to_login = r.status_code == 303 and "/login" in r.headers.get("location", "")
            if not (to_login or (r.status_code == 403 and "CSRF" in r.text)):
                wrong.append(f"{method} {path}: anonymous got {r.status_code}")
        elif role == "admin" or role in allowed:
            if denied:
                wrong.append(f"{method} {path}: {role} refused")
        elif not denied:
            wrong.append(f"{method} {path}: {role} got {r.status_code}, expected a role refusal")
    assert wrong == []


def test_state_changes_need_the_csrf_token(app: Any) -> None:
    client, _ = _client(app, "admin")
    for (method, path), allowed in sorted(MATRIX.items()):
        if method != "POST" or allowed is None:
            continue
        r = client.post(_concrete(path), follow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text, f"{path}: {r.status_code}"


def test_provider_callbacks_refuse_unsigned_requests(app: Any) -> None:
    client = TestClient(app)
    assert client.post("/webhooks/twilio/status", data={"CallSid": "CA1"}).status_code == 403
    assert client.post("/webhooks/sendgrid/events", content=b"[]").status_code == 403


def test_a_campaign_id_in_a_url_is_never_read_as_a_folder(app: Any) -> None:
    client, token = _client(app, "admin")
    # "console" and "." are folders where the console runs: not campaign ids.
    for cid in ("console", ".", "campaigns"):
        r = client.get(f"/campaigns/{cid}/results.csv", headers={"X-CSRF-Token": token})
        assert r.status_code == 404, (cid, r.status_code)
