"""The supervisor's board (per-adviser figures, totals, alerts, absence), finding a person by
name, and the person page reading a stored explanation (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

import targeting.explain
from campaigns.app.people import SearchError, member_explanation, search_people
from campaigns.calls.board import board_rows, touch
from campaigns.calls.card import registered_definitions
from campaigns.calls.queue import claim_next, record_outcome
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.audit import record
from campaigns.ledger.db import session_scope
from campaigns.ledger.explanations import store_explanation
from campaigns.ledger.models import (
    QUEUED,
    Action,
    AuditEvent,
    Member,
    MemberExplanation,
    Person,
    User,
)
from campaigns.ledger.registry import register_campaign
from campaigns.ledger.retention import apply_retention
from targeting.explain import Check, Explanation
from tests.factories import population
from tests.test_console import app_for, login  # noqa: F401  (the web fixtures)
from tests.test_retention_flow import ledger

D = load_campaign("sophia-ald8").definition
PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 6, 15)
CALL_DAY = date(2026, 4, 20)
NOW = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)


def _admit(engine: Engine, n: int = 2) -> None:
    targets, people = population(n, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=CALL_DAY - timedelta(1)
        )
    tick(engine=engine, definition=D, today=CALL_DAY)


@pytest.fixture
def one_call_done(engine: Engine) -> int:
    """`adv` logged in at 10:00, showed a number and saved "refused" at 10:01:30; one call left."""
    _admit(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="adv", password="correct horse battery", role="adviser")
        claim = claim_next(
            session=s, adviser="adv", now=NOW, definitions=registered_definitions(session=s)
        )
        assert claim is not None
        aid = claim.action_id
        record(session=s, actor="adv", action="login", target="console", now=NOW)
        record(
            session=s,
            actor="adv",
            action="reveal_contact",
            target="person/1",
            detail={"action": aid},
            now=NOW,
        )
        record_outcome(
            session=s, action_id=aid, adviser="adv", outcome="refused", now=NOW, definition=D
        )
        record(
            session=s,
            actor="adv",
            action="outcome",
            target=f"action/{aid}",
            now=NOW + timedelta(seconds=90),
        )
    return aid


def _board(engine: Engine, at: datetime) -> dict[str, Any]:
    with session_scope(engine) as s:
        return board_rows(session=s, now=at)


def test_each_advisers_figures_and_the_totals(engine: Engine, one_call_done: int) -> None:
    b = _board(engine, NOW + timedelta(minutes=2))
    (p,) = b["people"]
    assert p["username"] == "adv" and p["state_label"] == "disponible"
    assert (p["calls"], p["reached"], p["reach_rate"]) == (1, 1, 1.0)
    assert p["mean_handling_s"] == pytest.approx(90)
    assert b["totals"]["calls"] == 1 and b["totals"]["reach_rate"] == 1.0
    assert b["totals"]["queue"] == 1
    assert b["alerts"] == []


def test_an_adviser_whose_page_is_gone_is_absent_within_a_minute(
    engine: Engine, one_call_done: int
) -> None:
    later = NOW + timedelta(seconds=90 + 61)
    b = _board(engine, later)
    assert b["advisers"] == {"adv": "absent"}
    # The alert gives the last moment seen in Paris time (10:01), not UTC (08:01).
    assert any("ne répond plus depuis 10:01" in a for a in b["alerts"]), b["alerts"]
    with session_scope(engine) as s:
        assert touch(session=s, username="adv", now=later)  # the page's heartbeat
    assert _board(engine, later + timedelta(seconds=30))["advisers"] == {"adv": "disponible"}


def test_alerts_idle_adviser_stalled_queue_overdue_callback(
    engine: Engine, one_call_done: int
) -> None:
    at = NOW + timedelta(minutes=20)
    with session_scope(engine) as s:
        touch(session=s, username="adv", now=at)  # present, but nothing done for 18 minutes
        left = s.exec(select(Action).where(Action.state == QUEUED, Action.channel == "phone"))
        a = left.one()
        a.due_at = NOW - timedelta(hours=1)  # a callback promised for 9:00
        s.add(a)
    b = _board(engine, at)
    assert b["advisers"] == {"adv": "inactif"}
    alerts = " | ".join(b["alerts"])
    assert "est inactif depuis plus de 10 minutes" in alerts
    assert "La file ne se vide pas : 1 appel(s) en attente" in alerts
    assert "1 rappel(s) en retard" in alerts


def test_search_a_person_masked_and_audited(engine: Engine) -> None:
    _admit(engine, 3)
    with session_scope(engine) as s:
        nir = s.exec(select(Person).where(Person.nom == "NOM1")).one().nir
        found = search_people(
            session=s, actor="sup", nom="nom1", birth="12/05/1960", postcode="91000", now=NOW
        )
        assert len(found) == 1
        f = found[0]
        assert f.initials == "P. N." and f.birth == "05/1960" and f.postcode == "91000"
        assert nir not in repr(f) and f.nir.startswith(nir[:3]) and "••" in f.nir
        assert [m["campaign_id"] for m in f.memberships] == ["sophia-ald8"]
        assert (
            search_people(session=s, actor="sup", nom="NOM1", birth="05/1960", postcode="75011")
            == []
        )
        assert (
            search_people(session=s, actor="sup", nom="NOM1", birth="05/1961", postcode="91000")
            == []
        )
        with pytest.raises(SearchError, match="code postal"):
            search_people(session=s, actor="sup", nom="NOM1", birth="05/1960", postcode="91")
        with pytest.raises(SearchError, match="date de naissance"):
            search_people(session=s, actor="sup", nom="NOM1", birth="1960", postcode="91000")
        audit = s.exec(select(AuditEvent).where(AuditEvent.action == "search_person")).all()
        assert len(audit) == 3 and audit[0].detail["results"] == 1
        assert "NOM1" not in str([e.detail for e in audit])  # criteria named, not their values


def _fake_explanation(**_: Any) -> Explanation:
    return Explanation(
        "key",
        1,
        CALL_DAY - timedelta(1),
        found=True,
        eligible=True,
        criteria=[Check("ald", True, None, "ALD 8 en cours", rows=[{"fin": ANCHOR}])],
    )


def _refuse(**_: Any) -> Explanation:
    raise AssertionError("the targeting engine must not run on a person page")


def test_an_explanation_is_computed_once_then_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _admit(engine, 1)
    monkeypatch.setattr(targeting.explain, "explain_person", _fake_explanation)
    with session_scope(engine) as s:
        mid = s.exec(select(Member)).one().id
        assert mid is not None
        first = member_explanation(session=s, member_id=mid, extract=Path("none"))
        assert first["criteria"][0]["detail"] == "ALD 8 en cours"
    monkeypatch.setattr(targeting.explain, "explain_person", _refuse)
    with session_scope(engine) as s:
        again = member_explanation(session=s, member_id=mid, extract=Path("none"))
        assert again == first and again["as_of"] == CALL_DAY - timedelta(1)
        assert s.get(MemberExplanation, mid) is not None


def test_the_person_page_reads_the_stored_explanation(
    app_for: Any,  # noqa: F811
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _admit(engine, 1)
    monkeypatch.setattr(targeting.explain, "explain_person", _fake_explanation)
    with session_scope(engine) as s:
        mid = s.exec(select(Member)).one().id
        member_explanation(session=s, member_id=mid or 0, extract=Path("none"))
    monkeypatch.setattr(targeting.explain, "explain_person", _refuse)
    sup = app_for(NOW)
    login(sup, "sup")
    page = sup.get(f"/campaigns/sophia-ald8/members/{mid}?via=recherche")
    assert page.status_code == 200
    assert "ALD 8 en cours" in page.text and "indisponible" not in page.text
    for raw in ("<td>queued</td>", "<td>done</td>", "<td>phone</td>", "<td>letter</td>"):
        assert raw not in page.text  # states and channels in French
    assert "<td>à faire</td>" in page.text or "<td>fait</td>" in page.text
    with session_scope(engine) as s:
        seen = s.exec(select(AuditEvent).where(AuditEvent.action == "view_person")).one()
        assert seen.detail == {"via": "recherche"}


def test_search_page_board_page_and_heartbeat(app_for: Any, engine: Engine) -> None:  # noqa: F811
    _admit(engine, 2)
    sup = app_for(NOW)
    login(sup, "sup")
    page = sup.get(
        "/people", params={"nom": "NOM0", "naissance": "05/1960", "code_postal": "91000"}
    )
    assert page.status_code == 200 and "P. N." in page.text and "via=recherche" in page.text
    with session_scope(engine) as s:
        nir = s.exec(select(Person).where(Person.nom == "NOM0")).one().nir
    assert nir not in page.text
    bad = sup.get("/people", params={"nom": "NOM0", "naissance": "x", "code_postal": "91000"})
    assert "date de naissance au format jj/mm/aaaa" in bad.text
    board = sup.get("/board")
    assert board.status_code == 200 and '<script src="/static/board.js"' in board.text
    assert "<script>" not in board.text  # no inline script (Content-Security-Policy)
    assert sup.get("/static/board.js").status_code == 200
    adv = app_for(NOW)
    login(adv, "adv")
    calls = adv.get("/calls")
    assert '<script src="/static/presence.js"' in calls.text
    token = calls.text.split('data-csrf="')[1].split('"')[0]
    assert adv.post("/presence", headers={"X-CSRF-Token": token}).status_code == 204
    assert adv.post("/presence").status_code == 403
    with session_scope(engine) as s:
        assert s.exec(select(Member)).first() is not None
        u = s.exec(select(User).where(User.username == "adv")).one()
        assert u.last_seen_at == NOW


def test_retention_removes_a_stored_explanation(engine: Engine) -> None:
    gone = ledger(engine)  # the two people retention anonymises
    with session_scope(engine) as s:
        for m in s.exec(select(Member)).all():
            store_explanation(
                session=s,
                member_id=m.id or 0,
                as_of=m.entered_on,
                explanation=_fake_explanation(),
                now=NOW,
            )
        apply_retention(session=s, as_of=date(2026, 6, 16), dry_run=False)
    with session_scope(engine) as s:
        kept = {e.member_id for e in s.exec(select(MemberExplanation)).all()}
        theirs = {m.id for m in s.exec(select(Member).where(col(Member.person_id).in_(gone)))}
    assert len(kept) == 2 and len(theirs) == 2 and not kept & theirs
