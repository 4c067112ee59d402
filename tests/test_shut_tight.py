"""Issue 17 "shut tight": server-side sessions, reveal under a live claim, denials audited,
login throttling per account and per address, security headers, échelon sign-off rules."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.app.accounts import change_password
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import AuditEvent, ConsoleSession, Person
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from console.web.app import create_app
from console.web.throttle import client_address, parse_proxies
from tests.factories import population
from tests.test_console import (
    ANCHOR,
    CALL_DAY,
    PARIS,
    PW,
    D,
    csrf,
    listed,
    login,
    member_ids,
    post,
    users,
)

COOKIE = "relance_session"


@pytest.fixture
def app_for(engine: Engine, tmp_path: Path) -> Any:
    """A console client on the test database (test_console's accounts), at a given time."""
    users(engine)

    def make(now: datetime | None = None, **settings: Any) -> TestClient:
        app = create_app(
            Settings(
                data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none", **settings
            ),
            engine=engine,
        )
        if now is not None:
            app.state.clock = lambda: now
        return TestClient(app)

    return make


def denials(engine: Engine) -> list[AuditEvent]:
    with session_scope(engine) as s:
        rows = list(s.exec(select(AuditEvent).where(AuditEvent.action == "access_denied")))
        for r in rows:
            s.expunge(r)
        return rows


# 1. Server-side sessions ------------------------------------------------------------------


def test_logout_ends_the_session_so_a_saved_cookie_opens_nothing(
    app_for: Any, engine: Engine
) -> None:
    c = app_for()
    assert login(c, "mgr").status_code == 303
    saved = c.cookies.get(COOKIE)
    assert saved and "uid" not in saved  # the cookie carries a signed id, nothing else
    assert c.get("/campaigns").status_code == 200
    r = c.post("/logout", data={"csrf": csrf(c, "/campaigns")}, follow_redirects=False)
    assert r.status_code == 303
    thief = app_for()
    thief.cookies.set(COOKIE, saved)
    r = thief.get("/campaigns", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with session_scope(engine) as s:
        row = s.exec(select(ConsoleSession)).one()
        assert row.ended_at is not None and row.end_reason == "logout"
    # The replay is a denial on record: who, what, why.
    [d] = denials(engine)
    assert (d.actor, d.target, d.detail["status"]) == ("mgr", "/campaigns", 401)


def test_a_password_change_ends_every_session_of_the_account(app_for: Any, engine: Engine) -> None:
    one, two = app_for(), app_for()
    login(one, "mgr")
    login(two, "mgr")
    assert one.get("/campaigns").status_code == 200
    with session_scope(engine) as s:
        assert (
            change_password(
                session=s, actor="admin", username="mgr", password="a brand new passphrase"
            )
            == 2
        )
    for c in (one, two):
        r = c.get("/campaigns", follow_redirects=False)
        assert r.status_code == 303 and "/login" in r.headers["location"]
    assert login(one, "mgr", "a brand new passphrase").status_code == 303
    assert one.get("/campaigns").status_code == 200


def test_a_session_still_expires_after_its_hours(app_for: Any) -> None:
    t0 = datetime(2026, 4, 20, 8, 0, tzinfo=PARIS)
    c = app_for(t0)
    login(c, "mgr")
    later = app_for(t0 + timedelta(hours=9))
    later.cookies.set(COOKIE, c.cookies.get(COOKIE) or "")
    assert later.get("/campaigns", follow_redirects=False).status_code == 303


def test_a_forged_cookie_opens_nothing(app_for: Any) -> None:
    c = app_for()
    c.cookies.set(COOKIE, "abc.def.ghi")
    assert c.get("/campaigns", follow_redirects=False).status_code == 303


# 2 and 3. Reveal under a live claim, denials audited without personal data ----------------


def _a_call(engine: Engine) -> None:
    targets, people = population(1, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s,
            definition=D,
            targets=targets,
            people=people,
            today=CALL_DAY - timedelta(days=1),
        )
    tick(engine=engine, definition=D, today=CALL_DAY)


def test_no_reveal_on_a_call_already_closed_and_the_refusal_is_audited(
    app_for: Any, engine: Engine
) -> None:
    _a_call(engine)
    now = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)
    adv = app_for(now)
    login(adv, "adv")
    card = post(adv, "/calls/next", {}, "/calls").headers["location"]
    post(adv, f"{card}/reveal", {}, card)
    with session_scope(engine) as s:
        p = s.exec(select(Person)).one()
        nir, phone = p.nir, p.telephone
    assert phone in adv.get(card).text
    r = post(adv, f"{card}/outcome", {"outcome": "objects"}, card)
    assert r.status_code == 303
    # The call is closed: the card no longer shows the number, a new reveal is refused.
    again = adv.get(card)
    assert phone not in again.text and nir not in again.text
    r = post(adv, f"{card}/reveal", {}, card)
    assert r.status_code == 403 and "plus en cours" in r.text
    assert phone not in adv.get(card).text
    [d] = denials(engine)
    assert (d.actor, d.target, d.detail["status"]) == ("adv", f"{card}/reveal", 403)
    assert "plus en cours" in d.detail["why"]
    with session_scope(engine) as s:
        logged = " ".join(str(e.detail) + e.target for e in s.exec(select(AuditEvent)))
    assert nir and phone and nir not in logged and phone not in logged


def test_every_403_is_audited_with_who_what_and_why(app_for: Any, engine: Engine) -> None:
    adv = app_for()
    login(adv, "adv")
    assert adv.get("/campaigns").status_code == 403
    r = adv.post("/logout", data={"csrf": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    got = [(d.actor, d.target, d.detail["method"], d.detail["status"]) for d in denials(engine)]
    assert got == [("adv", "/campaigns", "GET", 403), ("adv", "/logout", "POST", 403)]
    assert "CSRF" in denials(engine)[1].detail["why"]


# 5. Login throttling per account and per address ------------------------------------------


def _login_from(c: TestClient, who: str, password: str, **headers: str) -> int:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert m
    data = {"username": who, "password": password, "csrf": m.group(1), "next": "/"}
    r = c.post("/login", data=data, headers=headers, follow_redirects=False)
    return int(r.status_code)


def _platform(engine: Engine, tmp_path: Path, n: int, **settings: Any) -> Any:
    with session_scope(engine) as s:
        for i in range(n):
            create_user(session=s, username=f"a{i:02d}", password=PW, role="adviser")
    app = create_app(Settings(data_dir=tmp_path, secret_key="k" * 40, **settings), engine=engine)
    return app


def test_a_platform_behind_one_address_survives_its_colleagues_typos(
    engine: Engine, tmp_path: Path
) -> None:
    app = _platform(engine, tmp_path, 40)
    c = TestClient(app, client=("192.0.2.10", 4000))
    # 39 advisers each mistype their password once, some twice: 60 failures from one address.
    for i in range(39):
        assert _login_from(c, f"a{i:02d}", "wrong password!") == 200
    for i in range(21):
        assert _login_from(c, f"a{i:02d}", "wrong password!") == 200
    assert _login_from(c, "a39", PW) == 303  # the 40th still logs in


def test_one_account_is_throttled_even_when_it_does_not_exist(
    engine: Engine, tmp_path: Path
) -> None:
    app = _platform(engine, tmp_path, 1, login_max_failures_per_account=3)
    c = TestClient(app, client=("192.0.2.10", 4000))
    for _ in range(3):
        assert _login_from(c, "nobody", "wrong password!") == 200
    r = c.get("/login")
    assert r.status_code == 200
    assert _login_from(c, "nobody", "wrong password!") == 429
    assert _login_from(c, "a00", PW) == 303  # the address is not blocked for others


def test_forwarded_addresses_are_believed_only_from_configured_proxies(
    engine: Engine, tmp_path: Path
) -> None:
    app = _platform(engine, tmp_path, 1, login_max_failures_per_address=2)
    # Anyone else: X-Forwarded-For is ignored, each new fake address still counts as the peer.
    c = TestClient(app, client=("198.51.100.7", 4000))
    assert _login_from(c, "x1", "wrong password!", **{"X-Forwarded-For": "203.0.113.1"}) == 200
    assert _login_from(c, "x2", "wrong password!", **{"X-Forwarded-For": "203.0.113.2"}) == 200
    assert _login_from(c, "a00", PW, **{"X-Forwarded-For": "203.0.113.3"}) == 429
    # Behind the configured proxy, each client is told apart by the forwarded address.
    app2 = _platform_again(engine, tmp_path, trusted_proxies="10.0.0.0/8")
    p = TestClient(app2, client=("10.0.0.5", 4000))
    assert _login_from(p, "x1", "wrong password!", **{"X-Forwarded-For": "203.0.113.1"}) == 200
    assert _login_from(p, "x2", "wrong password!", **{"X-Forwarded-For": "203.0.113.1"}) == 200
    assert _login_from(p, "a00", PW, **{"X-Forwarded-For": "203.0.113.1"}) == 429
    assert _login_from(p, "a00", PW, **{"X-Forwarded-For": "203.0.113.9"}) == 303


def _platform_again(engine: Engine, tmp_path: Path, **settings: Any) -> Any:
    return create_app(
        Settings(
            data_dir=tmp_path, secret_key="k" * 40, login_max_failures_per_address=2, **settings
        ),
        engine=engine,
    )


def test_client_address_takes_the_last_untrusted_hop() -> None:
    proxies = parse_proxies("10.0.0.0/8, 192.0.2.1")
    assert client_address("198.51.100.7", "1.2.3.4", proxies) == "198.51.100.7"
    assert client_address("10.1.1.1", "1.2.3.4", proxies) == "1.2.3.4"
    # A client forging the left part of the header gets its own address, not the forged one.
    assert client_address("10.1.1.1", "6.6.6.6, 1.2.3.4, 192.0.2.1", proxies) == "1.2.3.4"
    assert client_address("10.1.1.1", None, proxies) == "10.1.1.1"
    assert client_address("testclient", "1.2.3.4", proxies) == "testclient"


# 6. Headers ---------------------------------------------------------------------------------


def test_every_response_has_the_security_headers(app_for: Any) -> None:
    c = app_for()
    page = c.get("/login")
    h = page.headers
    csp = h["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("style-src-attr")[0]  # no inline script/style
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'nonce="{nonce.group(1)}"' in page.text  # the page's <style> carries it
    assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "same-origin" and h["cache-control"] == "no-store"
    login(c, "adv")
    calls = c.get("/calls")
    assert calls.headers["cache-control"] == "no-store"
    assert calls.headers["content-security-policy"] != csp  # a fresh nonce per response
    assert "secure" not in (page.headers.get("set-cookie") or "").lower()
    missing = c.get("/nope")
    assert missing.headers["x-frame-options"] == "DENY"


def test_the_cookie_is_secure_when_the_public_url_is_https(app_for: Any) -> None:
    c = app_for(public_base_url="https://relance.example.fr")
    cookie = c.get("/login").headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


# 7. Sign-off ---------------------------------------------------------------------------------


def test_only_the_echelons_own_lead_signs_off_and_a_signed_list_is_frozen(
    app_for: Any, engine: Engine
) -> None:
    listed(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="root", password=PW, role="admin")
    page = f"/campaigns/{D.id}/validation"
    mgr = app_for()
    login(mgr, "mgr")
    assert post(mgr, f"{page}/sign-off", {"echelon": "93"}, page).status_code == 403
    lead = app_for()
    login(lead, "lead93")
    assert post(lead, f"{page}/sign-off", {"echelon": "75"}, page).status_code == 403
    post(lead, f"{page}/sign-off", {"echelon": "93"}, page)
    assert "Rouvrir la liste" in lead.get(page).text
    own = member_ids(engine, "93")[0]
    r = post(lead, f"{page}/exclude", {"member_id": own, "reason": "hospitalised"}, page)
    assert "rouvrez" in lead.get(r.headers["location"]).text
    r = post(lead, f"{page}/reopen", {"echelon": "93"}, page)
    assert "rouverte" in lead.get(r.headers["location"]).text
    post(lead, f"{page}/exclude", {"member_id": own, "reason": "hospitalised"}, page)
    assert "retirée" in lead.get(page).text
    # An administrator signs off another échelon only with a reason, which is recorded.
    root = app_for()
    login(root, "root")
    p75 = f"{page}?echelon=75"
    r = post(root, f"{page}/sign-off", {"echelon": "75"}, p75)
    assert "motif" in root.get(r.headers["location"]).text
    post(root, f"{page}/sign-off", {"echelon": "75", "reason": "responsable absent"}, p75)
    with session_scope(engine) as s:
        events = list(s.exec(select(AuditEvent).order_by(AuditEvent.id)))  # type: ignore[arg-type]
    signs = [e for e in events if e.action == "sign_off"]
    assert [(e.actor, e.detail.get("reason")) for e in signs] == [
        ("lead93", None),
        ("root", "responsable absent"),
    ]
    assert [e.actor for e in events if e.action == "reopen_echelon"] == ["lead93"]
