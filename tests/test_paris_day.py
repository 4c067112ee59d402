""" "Today" is the Paris date everywhere: at 00:30 in Paris the UTC date is still yesterday."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.calls.queue import claim_next, record_outcome
from campaigns.cascade.tick import tick
from campaigns.clock import paris_today
from campaigns.definition.model import ContactHours
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, MemberEvent
from campaigns.settings import Settings
from console.web.app import create_app
from tests.test_console import PW, login
from tests.test_services import CALL_DAY, D, setup

# 00:30 on 16 April 2026 in Paris (summer time, UTC+2): 22:30 UTC on the 15th.
PARIS_HALF_PAST_MIDNIGHT = datetime.combine(CALL_DAY - timedelta(days=1), time(22, 30), UTC)
# Calls allowed every day around the clock, so only the date decides.
ALL_DAY = D.model_copy(
    update={
        "contact_hours": ContactHours(
            days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            start=time(0, 0),
            end=time(23, 59),
            public_holidays=False,
        )
    }
)


def test_paris_today_of_a_moment() -> None:
    assert paris_today(PARIS_HALF_PAST_MIDNIGHT) == CALL_DAY
    # A naive moment is UTC (SQLite hands stored datetimes back without a zone).
    assert paris_today(PARIS_HALF_PAST_MIDNIGHT.replace(tzinfo=None)) == CALL_DAY


def test_a_claim_and_its_outcome_at_half_past_midnight_use_the_paris_date(engine: Engine) -> None:
    setup(engine, 3)
    tick(engine=engine, definition=ALL_DAY, today=CALL_DAY)
    now = PARIS_HALF_PAST_MIDNIGHT
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="a", now=now, definitions={D.id: ALL_DAY})
        assert c is not None  # due today in Paris: callable, though the UTC date is yesterday
        record_outcome(
            session=s,
            action_id=c.action_id,
            adviser="a",
            outcome="no_answer",
            now=now,
            definition=ALL_DAY,
        )
        a = s.get(Action, c.action_id)
        assert a is not None and a.done_on == CALL_DAY
        event = s.exec(
            select(MemberEvent).where(
                MemberEvent.member_id == c.member_id, MemberEvent.kind == "call_outcome"
            )
        ).one()
        assert event.on == CALL_DAY


def test_the_results_export_is_dated_in_paris(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 2)
    with session_scope(engine) as s:
        create_user(session=s, username="reg", password=PW, role="regional_lead")
    app = create_app(Settings(data_dir=tmp_path, secret_key="r" * 40), engine=engine)
    app.state.clock = lambda: PARIS_HALF_PAST_MIDNIGHT
    reg = TestClient(app)
    login(reg, "reg")
    r = reg.get(f"/campaigns/{D.id}/results.csv")
    assert r.status_code == 200
    assert f'filename="{D.id}-{CALL_DAY.isoformat()}.csv"' in r.headers["content-disposition"]


def test_an_exclusion_at_half_past_midnight_is_dated_in_paris(engine: Engine) -> None:
    from campaigns.cascade.review import exclude, revoke_exclusion
    from tests.test_validation import admit, members, the_list

    admit(engine, 1)
    m = members(engine)[0]
    now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 on 3 March in Paris (winter time)
    with session_scope(engine) as s:
        lst = the_list(s)
        exclude(
            session=s, target_list=lst, member_id=m.id or 0, reason="hospitalised", by="a", now=now
        )
        revoke_exclusion(session=s, target_list=lst, member_id=m.id or 0, by="a", now=now)
        days = {
            e.kind: e.on
            for e in s.exec(select(MemberEvent).where(MemberEvent.member_id == m.id))
            if e.kind in ("excluded", "exclusion_revoked")
        }
    assert days == {"excluded": paris_today(now), "exclusion_revoked": paris_today(now)}
    assert paris_today(now).isoformat() == "2026-03-03"
