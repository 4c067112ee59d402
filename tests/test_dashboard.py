"""The regional table on a hand-built campaign: attainment, pace, attribution, uplift by hand."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.cascade.membership import admit_targets
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Enrolment, Member, Person
from campaigns.ledger.registry import register_campaign
from campaigns.measurement.dashboard import (
    ObjectiveError,
    cumulative_enrolments,
    objective_history,
    parse_objectives_csv,
    results,
    set_objectives,
)
from campaigns.measurement.effect_report import effect_report
from campaigns.settings import Settings
from console.web.app import create_app
from tests.factories import population
from tests.test_console import PW, csrf, login

D = load_campaign("sophia-ald8").definition
ENTRY = date(2026, 3, 2)
TODAY = date(2026, 4, 30)


def build(engine: Engine) -> None:
    """40 people in 91: 0–29 contactable, 30–39 holdout; touches and enrolments by hand."""
    targets, people = population(40, anchor=date(2026, 5, 15))
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
        ids = [m.id for m in s.exec(select(Member).order_by(col(Member.id)))]
        s.execute(update(Member).values(holdout=False))
        s.execute(update(Member).where(col(Member.id).in_(ids[30:])).values(holdout=True))
        members = {m.id: m for m in s.exec(select(Member))}
        persons = {p.id: p for p in s.exec(select(Person))}

        def touch(i: int, channel: str, on: date, **kw: Any) -> None:
            m = members[ids[i]]
            s.add(
                Action(
                    key=f"t:{i}:{channel}",
                    campaign_id=D.id,
                    member_id=m.id,
                    person_id=m.person_id,
                    step={"phone": "call", "mailbox": "mailbox", "letter": "letter"}[channel],
                    channel=channel,
                    attempt=1,
                    due_on=on,
                    done_on=on,
                    created_at=datetime(2026, 3, 2, tzinfo=UTC),
                    updated_at=datetime(2026, 3, 2, tzinfo=UTC),
                    **kw,
                )
            )

        for i in range(10):
            touch(i, "phone", date(2026, 3, 10), state="done", outcome="refused")
        for i in range(10, 20):
            touch(i, "mailbox", date(2026, 3, 12), state="sent")
        for i in range(20, 25):
            touch(i, "letter", date(2026, 3, 20), state="sent")
        for i, on in [
            (0, "2026-03-15"),
            (1, "2026-03-15"),
            (2, "2026-03-15"),
            (10, "2026-03-20"),
            (11, "2026-03-20"),
            (20, "2026-06-30"),
            (25, "2026-03-25"),
            (30, "2026-03-18"),
        ]:
            p = persons[members[ids[i]].person_id]
            s.add(
                Enrolment(
                    campaign_id=D.id,
                    ben_nir_psa=p.ben_nir_psa,
                    ben_rng_gem=p.ben_rng_gem,
                    programme="sophia",
                    enrolled_on=date.fromisoformat(on),
                    channel="online",
                    source="test",
                )
            )
        set_objectives(session=s, campaign_id=D.id, targets={"91": 8}, by="mgr")


def test_the_table_computed_by_hand(engine: Engine) -> None:
    build(engine)
    with session_scope(engine) as s:
        rows, total = results(session=s, definition=D, today=TODAY)
        assert [r.echelon for r in rows] == sorted(D.objectives)  # every échelon with an objective
        r = next(x for x in rows if x.echelon == "91")
        assert all(x.eligible == 0 for x in rows if x.echelon != "91")
        assert (r.eligible, r.holdout, r.contacted, r.called, r.reached) == (40, 10, 25, 10, 10)
        assert (r.mailbox, r.letters, r.enrolled, r.objective) == (10, 5, 8, 8)
        assert r.attainment == pytest.approx(100.0)
        # 8 enrolments in 60 days, at that pace over 365 days: 48.7 for an objective of 8.
        assert r.projected == pytest.approx(100 * 8 * 365 / 60 / 8)
        assert total.enrolled == 8
        series = cumulative_enrolments(session=s, campaign_id=D.id)
        assert series == [
            (date(2026, 3, 15), 3),
            (date(2026, 3, 18), 4),
            (date(2026, 3, 20), 6),
            (date(2026, 3, 25), 7),
            (date(2026, 6, 30), 8),
        ]
        effects = {e.echelon: e for e in effect_report(session=s, campaign_id=D.id, window_days=60)}
    # Last touch within 60 days: 3 calls, 2 mailbox messages; the letter of 20 March is 102
    # days before the 30 June enrolment, and person 25 was never reached: 2 with no touch.
    assert effects["91"].credited == {"phone": 3, "mailbox": 2, "letter": 0, "none": 2}
    u = effects["91"].uplift
    assert (u.contacted, u.contacted_enrolled, u.holdout, u.holdout_enrolled) == (30, 7, 10, 1)
    assert u.difference == pytest.approx(7 / 30 - 1 / 10)
    assert u.verdict == "too_small" and "groupe témoin" in u.explanation


def test_objectives_keep_their_history_and_a_bad_csv_changes_nothing(engine: Engine) -> None:
    build(engine)
    with session_scope(engine) as s:
        set_objectives(session=s, campaign_id=D.id, targets={"91": 12}, by="mgr", note="revu")
    with session_scope(engine) as s:
        history = objective_history(session=s, campaign_id=D.id)
        assert [(o.echelon, o.target) for o in history if o.echelon == "91"][:2] == [
            ("91", 12),
            ("91", 8),
        ]
        rows, _ = results(session=s, definition=D, today=TODAY)
        assert next(x for x in rows if x.echelon == "91").objective == 12
    with pytest.raises(ObjectiveError) as e:
        parse_objectives_csv("echelon,objective\n91,10\n99,3\n75,x\n91,4\n", set(D.objectives))
    assert str(e.value) == (
        "ligne 3, colonne echelon : échelon inconnu; "
        "ligne 4, colonne objective : n'est pas un nombre entier positif; "
        "ligne 5, colonne echelon : échelon 91 donné deux fois"
    )
    assert parse_objectives_csv("\ufeffechelon,objective\n91,10\n\n75,3\n", set(D.objectives)) == {
        "91": 10,
        "75": 3,
    }


def test_the_page_exports_and_scope(engine: Engine, tmp_path: Path) -> None:
    build(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="reg", password=PW, role="regional_lead")
        create_user(session=s, username="lead93", password=PW, role="echelon_lead", echelon="93")
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
    app = create_app(Settings(data_dir=tmp_path, secret_key="r" * 40), engine=engine)
    app.state.clock = lambda: datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
    reg = TestClient(app)
    login(reg, "reg")
    page = reg.get("/campaigns/sophia-ald8/results")
    assert page.status_code == 200 and "<svg" in page.text and "Essonne" in page.text
    assert "il faut <strong>" in page.text and "il y en a 10" in page.text
    raw = reg.get("/campaigns/sophia-ald8/results.csv").content
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # Excel's BOM and CRLF
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0].startswith("échelon;nom;éligibles")
    # Up to today (30 April): the goal dated 30 June is not in the period.
    assert "91;Essonne;40;14;10;25;10;10;10;5;7;8;87,5;532,3" in lines
    assert lines[-2].startswith("total;Total;40;") and lines[-1] == ""
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(reg.get("/campaigns/sophia-ald8/results.xlsx").content))
    sheet = [[c.value for c in row] for row in wb["Résultats par échelon"].iter_rows()]
    assert ["91", "Essonne", 40] in [r[:3] for r in sheet]
    assert (
        reg.post(
            "/campaigns/sophia-ald8/objectives",
            data={"echelon": "91", "objective": 3, "csrf": csrf(reg, "/campaigns")},
        ).status_code
        == 403
    )
    lead = TestClient(app)
    login(lead, "lead93")
    assert "Essonne" not in lead.get("/campaigns/sophia-ald8/results").text
    mgr = TestClient(app)
    login(mgr, "mgr")
    token = csrf(mgr, "/campaigns/sophia-ald8/results")
    r = mgr.post(
        "/campaigns/sophia-ald8/objectives/import",
        data={"csrf": token},
        files={"file": ("obj.csv", b"echelon,objective\n91,x\n")},
        follow_redirects=True,
    )
    assert "ligne 2" in r.text and "a été modifié" in r.text
    r = mgr.post(
        "/campaigns/sophia-ald8/objectives/import",
        data={"csrf": token},
        files={"file": ("obj.csv", b"echelon,objective\n91,16\n")},
        follow_redirects=True,
    )
    assert "1 objectifs importés" in r.text and "import obj.csv" in r.text
    with session_scope(engine) as s:
        rows, _ = results(session=s, definition=D, today=TODAY)
    r91 = next(x for x in rows if x.echelon == "91")
    assert r91.objective == 16 and r91.attainment == pytest.approx(50.0)


def test_an_objective_too_large_or_a_broken_file_is_refused_in_french(engine: Engine) -> None:
    """An objective past what the ledger stores (found by the API fuzzer: a 500) and a CSV the
    reader cannot read are a clear error; nothing is written."""
    build(engine)
    known = set(D.objectives)
    with pytest.raises(ObjectiveError, match="ligne 2, colonne objective : au plus 100 000 000"):
        parse_objectives_csv("echelon;objective\n91;99999999999\n", known)
    with pytest.raises(ObjectiveError, match=r"ligne 2 : .*illisible"):
        parse_objectives_csv("echelon,objective\n91," + "9" * 200_000 + "\n", known)
    with session_scope(engine) as s, pytest.raises(ObjectiveError, match="au plus 100 000 000"):
        set_objectives(session=s, campaign_id=D.id, targets={"91": 10**12}, by="mgr")
