"""Ledger services on a real database (each test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.calls.queue import CallError, claim_next, record_outcome
from campaigns.cascade.enrolments import ingest_enrolment_file
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.model import DEFINITIONS_DIR, parse_definition
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Enrolment, Member, MemberEvent, Opposition
from campaigns.ledger.registry import register_campaign
from console.demo.simulator import at
from tests.factories import population

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
ANCHOR = date(2026, 6, 15)
CALL_DAY = ANCHOR - timedelta(days=60)  # Thursday 16 April 2026
ENTRY = ANCHOR - timedelta(days=80)


def setup(engine: Engine, n: int = 10, **kw: object) -> None:
    targets, people = population(n, anchor=ANCHOR, **kw)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)


def count(engine: Engine, model: type, *where: object) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(model).where(*where)).one())


def test_admission_is_idempotent_and_holdout_is_stable(engine: Engine) -> None:
    targets, people = population(200, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        first = admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
    with session_scope(engine) as s:
        again = admit_targets(
            session=s, definition=D, targets=targets, people=people, today=ENTRY + timedelta(days=1)
        )
    assert first["admitted"] == 200 and again["admitted"] == 0
    assert again["already_member"] == 200
    assert count(engine, Member) == 200
    holdout = count(engine, Member, col(Member.holdout).is_(True))
    assert holdout == first["holdout"] and 0 < holdout < 30  # ~5 % of 200
    assert count(engine, MemberEvent, MemberEvent.kind == "entered") == 200


def test_people_already_enrolled_in_the_ledger_are_not_admitted(
    engine: Engine, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text("ben_nir_psa,ben_rng_gem,date_adhesion,canal\nPSA000001,1,2026-03-01,online\n")
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        ingest_enrolment_file(session=s, path=feed, campaign_id=D.id, programme="sophia")
    targets, people = population(3, anchor=ANCHOR)
    with session_scope(engine) as s:
        c = admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
    assert c["admitted"] == 2 and c["not_admitted_enrolled"] == 1


@pytest.mark.parametrize(
    ("reason", "status"),
    [("deceased", "exited"), ("already_enrolled", "goal"), ("opposed", "exited")],
)
def test_members_leave_when_targeting_sees_their_situation_change(
    engine: Engine, reason: str, status: str
) -> None:
    setup(engine, 2)
    targets, people = population(2, anchor=ANCHOR)
    targets.loc[0, ["eligible", "reasons"]] = [False, f"{reason};no_medecin_traitant"]
    with session_scope(engine) as s:
        c = admit_targets(
            session=s, definition=D, targets=targets, people=people, today=ENTRY + timedelta(days=5)
        )
    assert c["left"] == 1
    with session_scope(engine) as s:
        m = s.exec(select(Member).order_by(col(Member.id))).first()
        assert m is not None and (m.status, m.status_reason) == (
            status,
            reason.replace("already_enrolled", "enrolled"),
        )


def test_renewed_ald_leaves_the_cascade(engine: Engine) -> None:
    setup(engine, 1)
    targets, people = population(1, anchor=ANCHOR + timedelta(days=1826))
    targets.loc[0, ["eligible", "reasons"]] = [False, "renewal_outside_horizon"]
    with session_scope(engine) as s:
        admit_targets(session=s, definition=D, targets=targets, people=people, today=CALL_DAY)
    with session_scope(engine) as s:
        m = s.exec(select(Member)).one()
        assert m.status_reason == "renewed"


def test_tick_twice_the_same_day_changes_nothing(engine: Engine) -> None:
    setup(engine, 30)
    first = tick(engine=engine, definition=D, today=CALL_DAY)
    n_actions = count(engine, Action)
    second = tick(engine=engine, definition=D, today=CALL_DAY)
    assert count(engine, Action) == n_actions
    assert second["actions_written"] == 0 and first["actions_written"] == n_actions
    callable_ = count(engine, Action, Action.step == "call", Action.state == "queued")
    holdout = count(engine, Member, col(Member.holdout).is_(True))
    assert callable_ == 30 - holdout


def test_tick_records_why_a_step_is_skipped(engine: Engine) -> None:
    setup(engine, 5, telephone=None)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        reasons = set(s.exec(select(Action.reason).where(Action.state == "skipped")).all())
    assert reasons == {"no_phone"}


def test_claims_follow_priority_and_never_give_one_person_to_two_advisers(engine: Engine) -> None:
    setup(engine, 12)
    tick(engine=engine, definition=D, today=CALL_DAY)
    now = at(CALL_DAY, 10)
    seen = []
    with session_scope(engine) as s:
        for i in range(6):
            c = claim_next(session=s, adviser=f"a{i}", now=now, definitions={D.id: D})
            assert c is not None
            seen.append(c.action_id)
        priorities = [s.get(Action, a).priority for a in seen]  # type: ignore[union-attr]
    assert len(set(seen)) == 6
    # Priority (all three gaps) first: persons 0, 3, 6, 9 minus holdout.
    assert priorities[: priorities.count(True)] == [True] * priorities.count(True)
    assert priorities.count(True) >= 3


def test_an_adviser_holds_one_claim_until_an_outcome(engine: Engine) -> None:
    setup(engine, 3)
    tick(engine=engine, definition=D, today=CALL_DAY)
    now = at(CALL_DAY, 10)
    with session_scope(engine) as s:
        c1 = claim_next(session=s, adviser="a", now=now, definitions={D.id: D})
        c2 = claim_next(session=s, adviser="a", now=now, definitions={D.id: D})
    assert c1 is not None and c2 is not None and c1.action_id == c2.action_id


def test_no_claim_outside_contact_hours(engine: Engine) -> None:
    setup(engine, 3)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        assert (
            claim_next(session=s, adviser="a", now=at(CALL_DAY, 8, 0), definitions={D.id: D})
            is None
        )
        assert (
            claim_next(session=s, adviser="a", now=at(CALL_DAY, 17, 30), definitions={D.id: D})
            is None
        )
        assert (
            claim_next(session=s, adviser="a", now=at(CALL_DAY, 8, 30), definitions={D.id: D})
            is not None
        )


def test_outcomes_drive_the_next_tick(engine: Engine) -> None:
    setup(engine, 3)
    tick(engine=engine, definition=D, today=CALL_DAY)
    now = at(CALL_DAY, 10)
    outcomes = {}
    with session_scope(engine) as s:
        for adviser, outcome in (("a", "no_answer"), ("b", "objects"), ("c", "refused")):
            c = claim_next(session=s, adviser=adviser, now=now, definitions={D.id: D})
            if c is None:
                continue  # a holdout member
            record_outcome(
                session=s,
                action_id=c.action_id,
                adviser=adviser,
                outcome=outcome,
                now=now,
                definition=D,
            )
            outcomes[c.member_id] = outcome
    tick(engine=engine, definition=D, today=CALL_DAY + timedelta(days=1))
    with session_scope(engine) as s:
        for member_id, outcome in outcomes.items():
            m = s.get(Member, member_id)
            calls = s.exec(
                select(Action).where(Action.member_id == member_id, Action.step == "call")
            ).all()
            assert m is not None
            if outcome == "no_answer":
                assert [(a.attempt, a.due_on) for a in calls][-1] == (2, date(2026, 4, 20))
            elif outcome == "objects":
                assert m.status == "exited"
                assert s.exec(select(Opposition)).one().canal == "all"
            else:
                assert len(calls) == 1 and m.status == "active"


def test_an_outcome_needs_the_claim_and_is_recorded_once(engine: Engine) -> None:
    setup(engine, 2)
    tick(engine=engine, definition=D, today=CALL_DAY)
    now = at(CALL_DAY, 10)
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="a", now=now, definitions={D.id: D})
        assert c is not None
        with pytest.raises(CallError):
            record_outcome(
                session=s,
                action_id=c.action_id,
                adviser="intruder",
                outcome="refused",
                now=now,
                definition=D,
            )
        record_outcome(
            session=s, action_id=c.action_id, adviser="a", outcome="refused", now=now, definition=D
        )
        # The same form posted twice is harmless; a different outcome is refused.
        record_outcome(
            session=s, action_id=c.action_id, adviser="a", outcome="refused", now=now, definition=D
        )
        with pytest.raises(CallError):
            record_outcome(
                session=s, action_id=c.action_id, adviser="a", outcome="busy", now=now, definition=D
            )


def test_callback_must_be_within_contact_hours(engine: Engine) -> None:
    setup(engine, 2)
    tick(engine=engine, definition=D, today=CALL_DAY)
    now = at(CALL_DAY, 10)
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="a", now=now, definitions={D.id: D})
        assert c is not None
        with pytest.raises(CallError, match="outside_contact_hours"):
            record_outcome(
                session=s,
                action_id=c.action_id,
                adviser="a",
                outcome="callback",
                now=now,
                definition=D,
                callback_at=at(CALL_DAY, 19),
            )
        with pytest.raises(CallError, match="public_holiday"):
            record_outcome(
                session=s,
                action_id=c.action_id,
                adviser="a",
                outcome="callback",
                now=now,
                definition=D,
                callback_at=at(date(2026, 5, 1), 10),
            )
        record_outcome(
            session=s,
            action_id=c.action_id,
            adviser="a",
            outcome="callback",
            now=now,
            definition=D,
            callback_at=at(CALL_DAY, 15),
        )


def test_enrolment_feed_reports_bad_lines_and_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 3)
    feed = tmp_path / "enrolments_2026-04-20.csv"
    feed.write_text(
        "ben_nir_psa,ben_rng_gem,date_adhesion,canal\n"
        "PSA000000,1,2026-04-20,online\n"
        "PSA000001,x,2026-04-20,online\n"
        "PSA000002,1,2026-02-30,online\n"
        "PSA000002,1,2026-04-20,carrier-pigeon\n"
        "PSA999999,1,2026-04-20,paper\n"
    )
    with session_scope(engine) as s:
        rep = ingest_enrolment_file(
            session=s,
            path=feed,
            campaign_id=D.id,
            programme="sophia",
            now=at(date(2026, 4, 20), 6),
        )
    assert rep.rows == 5 and rep.new == 2 and len(rep.errors) == 3
    assert [e.split(", ")[1] for e in rep.errors] == ["ligne 3", "ligne 4", "ligne 5"]
    assert "ben_rng_gem" in rep.errors[0] and "date_adhesion" in rep.errors[1]
    assert rep.members_closed == (1 if count(engine, Member, Member.status == "goal") else 0)
    with session_scope(engine) as s:
        again = ingest_enrolment_file(
            session=s,
            path=feed,
            campaign_id=D.id,
            programme="sophia",
            now=at(date(2026, 4, 21), 6),
        )
    assert again.new == 0 and again.already_known == 2 and again.members_closed == 0
    assert count(engine, Enrolment) == 2


def test_enrolment_cancels_what_is_queued_the_same_day(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 20)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.state == "queued")).first()
        assert a is not None
        m = s.get(Member, a.member_id)
        from campaigns.ledger.models import Person

        p = s.get(Person, m.person_id)  # type: ignore[union-attr]
        key = (p.ben_nir_psa, p.ben_rng_gem)  # type: ignore[union-attr]
    feed = tmp_path / "f.csv"
    feed.write_text(
        f"ben_nir_psa,ben_rng_gem,date_adhesion,canal\n{key[0]},{key[1]},2026-04-16,doctor\n"
    )
    with session_scope(engine) as s:
        rep = ingest_enrolment_file(
            session=s, path=feed, campaign_id=D.id, programme="sophia", now=at(CALL_DAY, 12)
        )
    assert rep.members_closed == 1
    with session_scope(engine) as s:
        a2 = s.get(Action, a.id)
        assert a2 is not None and (a2.state, a2.reason) == ("cancelled", "member_enrolled")


def test_a_claim_skips_and_cancels_a_call_opposed_since_the_tick(engine: Engine) -> None:
    from campaigns.ledger.models import Person

    setup(engine, 4)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        call = s.exec(
            select(Action).where(Action.channel == "phone").order_by(col(Action.id))
        ).first()
        assert call is not None
        first = s.get(Person, call.person_id)
        assert first is not None
        s.add(
            Opposition(
                ben_nir_psa=first.ben_nir_psa,
                ben_rng_gem=first.ben_rng_gem,
                canal="phone",
                opposed_on=CALL_DAY,
                source="another campaign's call",
            )
        )
    claimed = []
    with session_scope(engine) as s:
        for adviser in ("a", "b", "c", "d"):
            c = claim_next(session=s, adviser=adviser, now=at(CALL_DAY, 10), definitions={D.id: D})
            claimed.append(c.person_id if c else None)
    with session_scope(engine) as s:
        cancelled = s.exec(select(Action).where(Action.state == "cancelled")).all()
    assert first.id not in claimed and claimed[0] is not None
    assert [(a.person_id, a.reason) for a in cancelled] == [(first.id, "opposed_phone")]
