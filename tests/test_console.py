"""The web console through HTTP: login, CSRF, roles and scope, validation, the adviser's day."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.audit import verify
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import ACTIVE, AuditEvent, Member, MemberEvent, Opposition
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from console.web.app import create_app
from tests.factories import population

D = load_campaign("sophia-ald8").definition
PW = "correct horse battery"
PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 6, 15)
CALL_DAY = date(2026, 4, 20)  # a Monday, 56 days before the renewal


def users(engine: Engine) -> None:
    with session_scope(engine) as s:
        for name, role, echelon in [
            ("adv", "adviser", None),
            ("sup", "supervisor", None),
            ("mgr", "campaign_manager", None),
            ("lead93", "echelon_lead", "93"),
            ("lead75", "echelon_lead", "75"),
        ]:
            create_user(session=s, username=name, password=PW, role=role, echelon=echelon)


@pytest.fixture
def app_for(engine: Engine, tmp_path: Path) -> Any:
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


def csrf(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, page.text[:300]
    return m.group(1)


def login(client: TestClient, who: str, password: str = PW) -> Any:
    token = csrf(client)
    return client.post(
        "/login",
        data={"username": who, "password": password, "csrf": token, "next": "/"},
        follow_redirects=False,
    )


def post(client: TestClient, path: str, data: dict[str, Any], page: str) -> Any:
    return client.post(path, data={**data, "csrf": csrf(client, page)}, follow_redirects=False)


def listed(engine: Engine) -> None:
    """Six people on a pending list: three in 93, three in 75."""
    for start, echelon in ((0, "93"), (10, "75")):
        targets, people = population(3, anchor=ANCHOR, start=start)
        targets["echelon"] = echelon
        people["echelon"] = echelon
        with session_scope(engine) as s:
            register_campaign(session=s, definition=D)
            admit_targets(
                session=s, definition=D, targets=targets, people=people, today=date(2026, 3, 2)
            )


def member_ids(engine: Engine, echelon: str) -> list[int]:
    with session_scope(engine) as s:
        return [m.id for m in s.exec(select(Member).where(Member.echelon == echelon))]  # type: ignore[misc]


def test_login_required_wrong_password_and_lockout(app_for: Any) -> None:
    c = app_for()
    r = c.get("/campaigns", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    bad = login(c, "mgr", "wrong password!")
    assert bad.status_code == 200 and "incorrect" in bad.text
    for _ in range(4):
        login(c, "mgr", "wrong password!")
    locked = login(c, "mgr")  # five failures lock the account, even with the right password
    assert locked.status_code == 200 and "incorrect" in locked.text


def test_csrf_is_required_on_every_form(app_for: Any) -> None:
    c = app_for()
    assert c.post("/login", data={"username": "mgr", "password": PW}).status_code == 403
    assert login(c, "mgr").status_code == 303
    assert c.post("/logout", data={"csrf": "forged"}).status_code == 403


def test_a_new_session_at_login_and_sessions_expire(app_for: Any) -> None:
    c = app_for()
    c.get("/login")
    before = c.cookies.get("relance_session")
    login(c, "mgr")
    assert c.cookies.get("relance_session") != before
    assert c.get("/campaigns").status_code == 200
    expired = app_for(session_hours=0)
    login(expired, "mgr")
    assert expired.get("/campaigns", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("adv", "/board", 403),
        ("adv", "/campaigns", 403),
        ("sup", "/calls", 403),
        ("lead93", "/calls", 403),
        ("lead93", "/board", 403),
        ("sup", "/board", 200),
        ("adv", "/calls", 200),
        ("lead93", "/campaigns", 200),
        ("lead93", "/campaigns/sophia-ald8/validation?echelon=75", 403),
        ("sup", "/campaigns/sophia-ald8/validation", 403),
    ],
)
def test_roles_and_scope(app_for: Any, engine: Engine, who: str, path: str, status: int) -> None:
    listed(engine)
    c = app_for()
    login(c, who)
    assert c.get(path).status_code == status


def test_local_validation_in_the_console(app_for: Any, engine: Engine) -> None:
    listed(engine)
    page = "/campaigns/sophia-ald8/validation"
    lead = app_for()
    login(lead, "lead93")
    mine = lead.get(page)
    assert mine.status_code == 200 and mine.text.count("Retirer") == 3
    assert "NOM10" not in mine.text  # 75's people are not shown to 93
    other = member_ids(engine, "75")[0]
    assert (
        post(
            lead, f"{page}/exclude", {"member_id": other, "reason": "hospitalised"}, page
        ).status_code
        == 403
    )
    own = member_ids(engine, "93")[0]
    r = post(lead, f"{page}/exclude", {"member_id": own, "reason": "other"}, page)
    assert "needs+a+note" in r.headers["location"] or "needs%20a%20note" in r.headers["location"]
    post(lead, f"{page}/exclude", {"member_id": own, "reason": "hospitalised"}, page)
    assert "retirée : hospitalisé" in lead.get(page).text
    post(lead, f"{page}/sign-off", {"echelon": "93"}, page)
    assert post(lead, f"{page}/sign-off", {"echelon": "75"}, page).status_code == 403
    mgr = app_for()
    login(mgr, "mgr")
    r = post(mgr, f"{page}/decide", {"decision": "approve"}, page)
    assert "75" in mgr.get(r.headers["location"]).text  # not every échelon validated
    lead75 = app_for()
    login(lead75, "lead75")
    post(lead75, f"{page}/sign-off", {"echelon": "75"}, page)
    r = post(mgr, f"{page}/decide", {"decision": "approve"}, page)
    assert "5 personnes" in mgr.get(r.headers["location"]).text
    with session_scope(engine) as s:
        statuses = sorted(m.status for m in s.exec(select(Member)))
        actions = [e.action for e in s.exec(select(AuditEvent))]
        assert verify(session=s) == (len(actions), None)
    assert statuses == ["active"] * 5 + ["exited"]
    assert {"view_list", "exclude", "sign_off", "list_approve"} <= set(actions)


def test_person_page_scope(app_for: Any, engine: Engine) -> None:
    listed(engine)
    m75 = member_ids(engine, "75")[0]
    lead = app_for()
    login(lead, "lead93")
    assert lead.get(f"/campaigns/sophia-ald8/members/{m75}").status_code == 403
    mgr = app_for()
    login(mgr, "mgr")
    page = mgr.get(f"/campaigns/sophia-ald8/members/{m75}")
    assert page.status_code == 200 and "NOM10" in page.text and "entered" in page.text


def test_the_advisers_day_and_the_board(app_for: Any, engine: Engine) -> None:
    targets, people = population(2, anchor=ANCHOR)
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
    now = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)
    adv = app_for(now)
    login(adv, "adv")
    r = post(adv, "/calls/next", {}, "/calls")
    card_path = r.headers["location"]
    card = adv.get(card_path)
    assert card.status_code == 200 and "+336 •• •• •• " in card.text
    assert "+3361234" not in card.text
    assert "Madame" in card.text or "Monsieur" in card.text
    # An outcome is owed before the next claim: "next" comes back to the same card.
    assert post(adv, "/calls/next", {}, "/calls").headers["location"] == card_path
    post(adv, f"{card_path}/reveal", {}, card_path)
    assert "+3361234" in adv.get(card_path).text
    r = post(
        adv,
        f"{card_path}/outcome",
        {"outcome": "callback", "callback_at": "2026-04-19T10:00"},
        card_path,
    )
    assert "callback" in r.headers["location"] or "e=" in r.headers["location"]
    assert "Offres sur rebond" in adv.get(card_path).text
    r = post(
        adv,
        f"{card_path}/outcome",
        {"outcome": "objects", "notes": "ne veut plus", "offers": ["medecin-traitant"]},
        card_path,
    )
    assert r.headers["location"] == "/calls"
    with session_scope(engine) as s:
        assert s.exec(select(Opposition)).one().canal == "all"
        offered = s.exec(select(MemberEvent).where(MemberEvent.kind == "offer_made")).one()
        assert offered.detail["offer"] == "medecin-traitant"
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.actor == "adv"))]
    assert actions.count("reveal_contact") == 1 and "outcome" in actions
    other = app_for(now)
    login(other, "adv")  # the same adviser elsewhere gets nothing held
    sup = app_for(now)
    login(sup, "sup")
    board = sup.get("/board/partial")
    assert board.status_code == 200 and "s&#39;oppose à être contacté : 1" in board.text
    assert "<td>adv</td><td>disponible</td>" in board.text
    assert "0 min 00 s" in board.text and "sur 1 appel" in board.text
    assert sup.get(card_path).status_code == 403
    with session_scope(engine) as s:
        left = s.exec(select(Member).where(Member.status == ACTIVE)).all()
    assert len(left) == 1
