"""The contact policy at every contact point: tick, call claim, dial, dispatch, `why`."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from campaigns.calls.queue import claim_next, record_outcome
from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Member, MemberEvent, Opposition, Person
from campaigns.ledger.registry import register_campaign
from campaigns.measurement.why import why
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox
from console.demo.simulator import at
from tests.factories import population

C = load_campaign("sophia-ald8")
D = C.definition
# The same campaign under another id: another campaign reaching the same people.
OTHER = D.model_copy(update={"id": "sophia-bis"})
ANCHOR = date(2026, 6, 15)
CALL_DAY = ANCHOR - timedelta(days=60)  # Thursday 16 April 2026
MAILBOX_DAY = ANCHOR - timedelta(days=45)
ENTRY = ANCHOR - timedelta(days=80)
PARIS = ZoneInfo("Europe/Paris")


def setup(engine: Engine, n: int, *definitions: object, **kw: object) -> None:
    targets, people = population(n, anchor=ANCHOR, **kw)
    with session_scope(engine) as s:
        for d in definitions or (D,):
            register_campaign(session=s, definition=d, launched=True)  # type: ignore[arg-type]
            admit_targets(
                session=s,
                definition=d,  # type: ignore[arg-type]
                targets=targets,
                people=people,
                today=ENTRY,
            )


def oppose(s: Session, person_id: int, canal: str, on: date) -> None:
    p = s.get(Person, person_id)
    assert p is not None
    s.add(
        Opposition(
            ben_nir_psa=p.ben_nir_psa,
            ben_rng_gem=p.ben_rng_gem,
            canal=canal,
            opposed_on=on,
            source="console",
        )
    )


def calls_of(s: Session, campaign_id: str, person_id: int) -> list[Action]:
    return list(
        s.exec(
            select(Action)
            .where(
                Action.campaign_id == campaign_id,
                Action.person_id == person_id,
                Action.step == "call",
            )
            .order_by(col(Action.attempt))
        )
    )


def test_an_opposition_recorded_mid_day_cancels_the_queued_call_at_claim(
    engine: Engine,
) -> None:
    setup(engine, 3)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        first = s.exec(
            select(Action).where(Action.channel == "phone").order_by(col(Action.id))
        ).first()
        assert first is not None
        oppose(s, first.person_id, "all", CALL_DAY)  # recorded at 11:00, after the tick
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="a", now=at(CALL_DAY, 11), definitions={D.id: D})
        assert c is not None and c.person_id != first.person_id
    with session_scope(engine) as s:
        a = s.get(Action, first.id)
        assert a is not None and (a.state, a.reason) == ("cancelled", "opposed_all")
        story = why(
            session=s,
            campaign_id=D.id,
            ben_nir_psa=s.get(Person, first.person_id).ben_nir_psa,  # type: ignore[union-attr]
            ben_rng_gem=1,
        )
    assert any(
        "annulé : opposed_all (la personne s'oppose à tout contact)" in line
        for _, line in story.lines
    )


def test_an_opposition_recorded_mid_day_cancels_the_queued_mailbox_message(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 4, telephone=None)
    tick(engine=engine, definition=D, today=MAILBOX_DAY)
    with session_scope(engine) as s:
        queued = list(
            s.exec(
                select(Action)
                .where(Action.channel == "mailbox", Action.state == "queued")
                .order_by(col(Action.id))
            )
        )
        assert len(queued) >= 2
        oppose(s, queued[0].person_id, "all", MAILBOX_DAY)
        oppose(s, queued[1].person_id, "letter", MAILBOX_DAY)  # another channel: no effect
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=Adapters(
            mailbox=LocalMailbox(tmp_path),
            email=LocalEmail(tmp_path),
            letters=LocalLetters(tmp_path),
        ),
        today=MAILBOX_DAY,
        now=at(MAILBOX_DAY, 14),
    )
    assert rep["cancelled_opposed_all"] == 1 and rep["sent"] == len(queued) - 1
    with session_scope(engine) as s:
        a0 = s.get(Action, queued[0].id)
        a1 = s.get(Action, queued[1].id)
        assert a0 is not None and (a0.state, a0.reason) == ("cancelled", "opposed_all")
        assert a1 is not None and a1.state == "sent"


def _reach_by_other(engine: Engine, day: date, outcome: str = "refused") -> int:
    """Another campaign's adviser reaches one person on `day`; their person id."""
    tick(engine=engine, definition=OTHER, today=day)
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="x", now=at(day, 10), definitions={OTHER.id: OTHER})
        assert c is not None
        record_outcome(
            session=s,
            action_id=c.action_id,
            adviser="x",
            outcome=outcome,
            now=at(day, 10),
            definition=OTHER,
        )
        return c.person_id


def _active_in_d(engine: Engine, person_id: int) -> bool:
    with session_scope(engine) as s:
        m = s.exec(
            select(Member).where(Member.campaign_id == D.id, Member.person_id == person_id)
        ).one()
        return not m.holdout


def test_a_person_reached_by_another_campaign_is_deferred_until_the_window_frees(
    engine: Engine,
) -> None:
    setup(engine, 3, D, OTHER)
    reached = _reach_by_other(engine, CALL_DAY)
    assert _active_in_d(engine, reached)
    day1 = CALL_DAY + timedelta(days=1)
    counts = tick(engine=engine, definition=D, today=day1)
    assert counts["deferred_call"] == 1
    tick(engine=engine, definition=D, today=day1)  # twice the same day
    tick(engine=engine, definition=D, today=CALL_DAY + timedelta(days=13))  # still deferred
    with session_scope(engine) as s:
        assert calls_of(s, D.id, reached) == []
        others = s.exec(
            select(Action).where(Action.campaign_id == D.id, Action.person_id != reached)
        ).all()
        assert others and all(a.state == "queued" for a in others)
        m = s.exec(
            select(Member).where(Member.campaign_id == D.id, Member.person_id == reached)
        ).one()
        events = s.exec(
            select(MemberEvent).where(
                MemberEvent.member_id == m.id, MemberEvent.kind == "contact_deferred"
            )
        ).all()
        assert [(e.on, e.detail["reason"], e.detail["until"]) for e in events] == [
            (day1, "pressure_calls", "2026-04-30")
        ]
        p = s.get(Person, reached)
        assert p is not None
        story = why(session=s, campaign_id=D.id, ben_nir_psa=p.ben_nir_psa, ben_rng_gem=1)
    assert (
        day1,
        "call (phone) pas contacté pour l'instant, reporté au 30/04/2026 : "
        "pressure_calls (trop d'appels récents (toutes campagnes))",
    ) in story.lines
    # The window frees on 30 April: the call is planned then.
    tick(engine=engine, definition=D, today=date(2026, 4, 30))
    with session_scope(engine) as s:
        calls = calls_of(s, D.id, reached)
        assert [(a.attempt, a.state, a.due_on) for a in calls] == [(1, "queued", date(2026, 4, 30))]


def test_a_call_reached_by_another_campaign_today_is_not_claimed(engine: Engine) -> None:
    """Both campaigns queued the call; once one reaches the person, the other waits."""
    setup(engine, 1, D, OTHER)
    assert _active_in_d(engine, 1)
    tick(engine=engine, definition=D, today=CALL_DAY)
    reached = _reach_by_other(engine, CALL_DAY)
    with session_scope(engine) as s:
        assert (
            claim_next(session=s, adviser="a", now=at(CALL_DAY, 11), definitions={D.id: D}) is None
        )
        (call,) = calls_of(s, D.id, reached)
        assert call.state == "queued"  # left for later, not cancelled


def test_retries_after_no_answer_and_callbacks_are_not_blocked_by_pressure(
    engine: Engine,
) -> None:
    setup(engine, 3)
    tick(engine=engine, definition=D, today=CALL_DAY)
    now = at(CALL_DAY, 10)
    done = {}
    with session_scope(engine) as s:
        for adviser, outcome in (("a", "no_answer"), ("b", "callback")):
            c = claim_next(session=s, adviser=adviser, now=now, definitions={D.id: D})
            assert c is not None
            record_outcome(
                session=s,
                action_id=c.action_id,
                adviser=adviser,
                outcome=outcome,
                now=now,
                definition=D,
                callback_at=at(CALL_DAY + timedelta(days=1), 15) if outcome == "callback" else None,
            )
            done[outcome] = c.person_id
    counts = tick(engine=engine, definition=D, today=CALL_DAY + timedelta(days=1))
    assert counts.get("deferred_call", 0) == 0
    with session_scope(engine) as s:
        retry = calls_of(s, D.id, done["no_answer"])
        assert [(a.attempt, a.state, a.due_on) for a in retry][-1] == (
            2,
            "queued",
            date(2026, 4, 20),
        )
        back = calls_of(s, D.id, done["callback"])
        assert [(a.attempt, a.state, a.reason) for a in back][-1] == (
            2,
            "queued",
            "callback_requested",
        )
    # The callback (a reached call of the same step) is claimable at its time.
    with session_scope(engine) as s:
        c = claim_next(
            session=s,
            adviser="b",
            now=at(CALL_DAY + timedelta(days=1), 15, 5),
            definitions={D.id: D},
        )
        assert c is not None and c.person_id == done["callback"]


def test_a_974_public_holiday_blocks_the_claim_there(engine: Engine) -> None:
    setup(engine, 1)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        p = s.get(Person, 1)
        assert p is not None
        p.departement = "974"
        assert not s.exec(select(Member).where(Member.person_id == 1)).one().holdout
        # The step's window must hold the holiday: no call is offered once its window is over.
        for a in calls_of(s, D.id, 1):
            a.anchor_date = date(2028, 1, 15)
    # 20 December 2027 (a Monday): abolition of slavery, a holiday in La Réunion only.
    holiday = datetime(2027, 12, 20, 9, 0, tzinfo=PARIS)  # 12:00 in La Réunion
    with session_scope(engine) as s:
        assert claim_next(session=s, adviser="a", now=holiday, definitions={D.id: D}) is None
        (call,) = calls_of(s, D.id, 1)
        assert call.state == "queued"  # not now, not cancelled
        nxt = claim_next(
            session=s, adviser="a", now=holiday + timedelta(days=1), definitions={D.id: D}
        )
        assert nxt is not None and nxt.person_id == 1


def test_oppositions_import_reports_lines_and_columns_and_is_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaigns.ledger.db import get_engine
    from campaigns.settings import get_settings
    from console.cli import app

    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    get_settings.cache_clear()
    try:
        bad = tmp_path / "bad.csv"
        bad.write_text(
            "ben_nir_psa,ben_rng_gem,canal,opposed_on\n"
            "PSA000001,1,phone,2026-04-16\n"
            "PSA000002,x,fax,\n"
            "PSA000003,1,all,16/04/2026\n"
        )
        r = CliRunner().invoke(app, ["oppositions", "import", str(bad)])
        assert r.exit_code == 2
        assert "ligne 3, colonne ben_rng_gem" in r.output and "ligne 3, colonne canal" in r.output
        assert "ligne 4, colonne opposed_on" in r.output and "rien n'est importé" in r.output
        with session_scope(get_engine()) as s:
            assert s.exec(select(Opposition)).all() == []
        good = tmp_path / "good.csv"
        good.write_text("ben_nir_psa,ben_rng_gem,canal\nPSA000001,1,phone\nPSA000002,1,all\n")
        r = CliRunner().invoke(app, ["oppositions", "import", str(good)])
        assert r.exit_code == 0 and "2 opposition(s) enregistrée(s)" in r.output, r.output
        again = CliRunner().invoke(app, ["oppositions", "import", str(good)])
        assert again.exit_code == 0 and "0 opposition(s) enregistrée(s)" in again.output
        with session_scope(get_engine()) as s:
            got = sorted((o.ben_nir_psa, o.canal, o.source) for o in s.exec(select(Opposition)))
        assert got == [
            ("PSA000001", "phone", "file good.csv"),
            ("PSA000002", "all", "file good.csv"),
        ]
    finally:
        get_settings.cache_clear()


def test_an_opposition_from_the_person_page_applies_at_once(engine: Engine, tmp_path: Path) -> None:
    import re

    from fastapi.testclient import TestClient

    from campaigns.ledger.accounts import create_user
    from campaigns.ledger.models import AuditEvent
    from campaigns.settings import Settings
    from console.web.app import create_app

    setup(engine, 2)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        for name, role in (("sup", "supervisor"), ("adv", "adviser"), ("lead", "echelon_lead")):
            create_user(
                session=s,
                username=name,
                password="correct horse battery",
                role=role,
                echelon="91" if role == "echelon_lead" else None,
            )
        call = s.exec(
            select(Action).where(Action.channel == "phone").order_by(col(Action.id))
        ).first()
        assert call is not None
        mid, pid = call.member_id, call.person_id

    def client(who: str) -> tuple[TestClient, str]:
        app = create_app(
            Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none"),
            engine=engine,
        )
        app.state.clock = lambda: at(CALL_DAY, 10, 30)
        c = TestClient(app)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
        assert token
        c.post(
            "/login",
            data={
                "username": who,
                "password": "correct horse battery",
                "csrf": token.group(1),
                "next": "/",
            },
        )
        page = c.get("/")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        return c, found.group(1)

    path = f"/campaigns/{D.id}/members/{mid}/opposition"
    adv, token = client("adv")
    r = adv.post(path, data={"canal": "phone", "csrf": token}, follow_redirects=False)
    assert r.status_code == 403  # an adviser only for the person they are calling
    sup, token = client("sup")
    page = sup.get(f"/campaigns/{D.id}/members/{mid}")
    assert 'id="opposition-form"' in page.text
    r = sup.post(path, data={"canal": "phone", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    with session_scope(engine) as s:
        (o,) = s.exec(select(Opposition)).all()
        assert (o.canal, o.source) == ("phone", "console by sup")
        assert (
            s.exec(select(AuditEvent).where(AuditEvent.action == "record_opposition")).one().actor
            == "sup"
        )
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="a", now=at(CALL_DAY, 11), definitions={D.id: D})
        assert c is None or c.person_id != pid
        a = s.get(Action, call.id)
        assert a is not None and (a.state, a.reason) == ("cancelled", "opposed_phone")
