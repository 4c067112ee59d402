"""What the console reads for advisers and supervisors, as core services (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.calls.board import board_rows
from campaigns.calls.card import (
    claimed_call,
    holds_call_for,
    outcomes_on,
    record_offers_made,
    registered_definitions,
    tried_channels,
)
from campaigns.calls.queue import claim_next, record_outcome
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.audit import record
from campaigns.ledger.db import session_scope
from campaigns.ledger.members import member_history
from campaigns.ledger.models import DONE, Action, MemberEvent
from campaigns.ledger.registry import register_campaign, registered_campaigns
from tests.factories import population

D = load_campaign("sophia-ald8").definition
PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 6, 15)
CALL_DAY = date(2026, 4, 20)  # a Monday, 56 days before the renewal
NOW = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)


@pytest.fixture
def calling(engine: Engine) -> int:
    """Two people due for a call; the adviser `adv` has claimed one: its action id."""
    targets, people = population(2, anchor=ANCHOR)
    with session_scope(engine) as s:
        create_user(session=s, username="adv", password="correct horse battery", role="adviser")
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s,
            definition=D,
            targets=targets,
            people=people,
            today=CALL_DAY - timedelta(days=1),
        )
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        claim = claim_next(
            session=s, adviser="adv", now=NOW, definitions=registered_definitions(session=s)
        )
        assert claim is not None
        return claim.action_id


def test_the_ledger_lists_campaigns_and_their_definitions(engine: Engine, calling: int) -> None:
    with session_scope(engine) as s:
        assert [c.id for c in registered_campaigns(session=s)] == ["sophia-ald8"]
        assert registered_definitions(session=s) == {"sophia-ald8": D}


def test_a_call_is_the_claimers_only(engine: Engine, calling: int) -> None:
    with session_scope(engine) as s:
        a = claimed_call(session=s, action_id=calling, adviser="adv")
        assert a is not None and a.id == calling
        assert claimed_call(session=s, action_id=calling, adviser="other") is None
        assert claimed_call(session=s, action_id=10**9, adviser="adv") is None
        assert a.lease_until is not None
        until = a.lease_until.replace(tzinfo=a.lease_until.tzinfo or UTC)  # naive on SQLite
        live = until - timedelta(minutes=1)
        assert holds_call_for(session=s, member_id=a.member_id, adviser="adv", now=live)
        assert not holds_call_for(session=s, member_id=a.member_id, adviser="other", now=live)
        others = s.exec(select(Action).where(Action.member_id != a.member_id)).all()
        other_member = others[0].member_id
        assert not holds_call_for(session=s, member_id=other_member, adviser="adv", now=live)
        # Once the lease ran out, or the call is closed, the person is not theirs any more.
        later = until + timedelta(minutes=1)
        assert not holds_call_for(session=s, member_id=a.member_id, adviser="adv", now=later)
        a.state = "done"
        s.add(a)
        s.flush()
        assert not holds_call_for(session=s, member_id=a.member_id, adviser="adv", now=live)


def test_tried_channels_outcomes_offers_and_history(engine: Engine, calling: int) -> None:
    with session_scope(engine) as s:
        a = s.get(Action, calling)
        assert a is not None
        member_id = a.member_id
        before = tried_channels(session=s, member_id=member_id)
        assert "phone" not in before
        record_outcome(
            session=s, action_id=calling, adviser="adv", outcome="refused", now=NOW, definition=D
        )
        made = record_offers_made(
            session=s,
            member_id=member_id,
            action_id=calling,
            offers=["medecin-traitant", "no-such-offer"],
            by="adv",
            on=CALL_DAY,
        )
        assert made == ["medecin-traitant"]
    with session_scope(engine) as s:
        assert tried_channels(session=s, member_id=member_id) == sorted({*before, "phone"})
        assert outcomes_on(session=s, adviser="adv", day=CALL_DAY) == {"refused": 1}
        assert outcomes_on(session=s, adviser="adv", day=CALL_DAY + timedelta(days=1)) == {}
        assert outcomes_on(session=s, adviser="other", day=CALL_DAY) == {}
        offered = s.exec(select(MemberEvent).where(MemberEvent.kind == "offer_made")).one()
        assert offered.detail == {"offer": "medecin-traitant", "by": "adv", "action": calling}
        events, actions = member_history(session=s, member_id=member_id)
        assert offered.id in [e.id for e in events]
        assert [e.id for e in events] == sorted(e.id for e in events)  # type: ignore[type-var]
        assert {x.member_id for x in actions} == {member_id} and calling in [x.id for x in actions]
        assert [x.id for x in actions] == sorted(x.id for x in actions)  # type: ignore[type-var]


def test_the_board(engine: Engine, calling: int) -> None:
    with session_scope(engine) as s:
        board = board_rows(session=s, now=NOW)
        ((cid, _echelon), row), *_ = board["per"].items()
        assert cid == "sophia-ald8" and row["calls"] == 0 and row["queue"] >= 1
        assert [h[0] for h in board["holders"]] == ["adv"]
        queued = row["queue"]
        record(session=s, actor="adv", action="login", target="console", now=NOW)
        record(
            session=s,
            actor="adv",
            action="reveal_contact",
            target="person/1",
            detail={"action": calling},
            now=NOW,
        )
        record_outcome(
            session=s, action_id=calling, adviser="adv", outcome="refused", now=NOW, definition=D
        )
        record(
            session=s,
            actor="adv",
            action="outcome",
            target=f"action/{calling}",
            now=NOW + timedelta(seconds=90),
        )
    with session_scope(engine) as s:
        assert s.exec(select(Action).where(Action.id == calling)).one().state == DONE
        board = board_rows(session=s, now=NOW + timedelta(minutes=2))
        row = board["per"][(cid, _echelon)]
        assert row["calls"] == 1 and row["reached"] == 1 and row["queue"] == queued - 1
        assert dict(row["outcomes"]) == {"refused": 1}
        assert board["holders"] == [] and board["last_hour"] == 1
        assert board["advisers"] == {"adv": "disponible"}
        assert board["handled"] == 1 and board["mean_handling_s"] == pytest.approx(90)
