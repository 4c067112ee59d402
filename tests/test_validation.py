"""Local validation before launch, on SQLite and PostgreSQL; and the flow that waits for it."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.catalog import load_campaign
from campaigns.db import get_engine, session_scope
from campaigns.membership import admit_targets
from campaigns.models import (
    ACTIVE,
    EXITED,
    PENDING,
    Action,
    Campaign,
    Member,
    MemberEvent,
    TargetList,
)
from campaigns.registry import register_campaign
from campaigns.tick import tick
from campaigns.validation import (
    ValidationError,
    approve,
    exclude,
    expire_overdue,
    list_status,
    pending_list,
    reject,
    revoke_exclusion,
    sign_off,
)
from tests.factories import population

D = load_campaign("sophia-ald8").definition
TODAY = date(2026, 3, 2)
ANCHOR = TODAY + timedelta(days=70)


def admit(engine: Engine, n: int = 6, start: int = 0, today: date = TODAY, **kw: Any) -> None:
    targets, people = population(n, anchor=ANCHOR, start=start)
    for k, v in kw.items():
        targets[k] = v
        if k == "echelon":
            people[k] = v
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=today)


def members(engine: Engine) -> list[Member]:
    with session_scope(engine) as s:
        return list(s.exec(select(Member).order_by(Member.id)))  # type: ignore[arg-type]


def the_list(s: Any) -> TargetList:
    lst = pending_list(session=s, campaign_id=D.id)
    assert lst is not None
    return lst


def test_before_launch_people_wait_and_nobody_is_contacted(engine: Engine) -> None:
    admit(engine, 4, echelon="93")
    admit(engine, 2, start=10, today=TODAY + timedelta(days=1), echelon="75")
    assert {m.status for m in members(engine)} == {PENDING}
    tick(engine=engine, definition=D, today=TODAY + timedelta(days=15))
    with session_scope(engine) as s:
        assert s.exec(select(Action)).first() is None
        lst = the_list(s)
        assert (lst.created_on, lst.deadline) == (TODAY, TODAY + timedelta(days=5))
        status = list_status(session=s, target_list=lst)
        assert {e: v["listed"] for e, v in status.per_echelon.items()} == {"75": 2, "93": 4}
        assert status.missing_signoffs == ["75", "93"]


def test_exclusions_have_a_fixed_reason_a_scope_and_can_be_revoked(engine: Engine) -> None:
    admit(engine, 3, echelon="93")
    m = members(engine)[0]
    with session_scope(engine) as s:
        lst = the_list(s)
        with pytest.raises(ValidationError, match="unknown reason"):
            exclude(session=s, target_list=lst, member_id=m.id or 0, reason="bored", by="a")
        with pytest.raises(ValidationError, match="needs a note"):
            exclude(session=s, target_list=lst, member_id=m.id or 0, reason="other", by="a")
        with pytest.raises(PermissionError, match="échelon 75 cannot act on échelon 93"):
            exclude(
                session=s,
                target_list=lst,
                member_id=m.id or 0,
                reason="hospitalised",
                by="a",
                scope="75",
            )
        first = exclude(
            session=s,
            target_list=lst,
            member_id=m.id or 0,
            reason="hospitalised",
            by="a",
            scope="93",
        )
        again = exclude(
            session=s, target_list=lst, member_id=m.id or 0, reason="hospitalised", by="b"
        )
        assert first.id == again.id
        assert revoke_exclusion(session=s, target_list=lst, member_id=m.id or 0, by="c")
        assert not revoke_exclusion(session=s, target_list=lst, member_id=m.id or 0, by="c")
        exclude(session=s, target_list=lst, member_id=m.id or 0, reason="already_followed", by="d")
        kinds = [e.kind for e in s.exec(select(MemberEvent).where(MemberEvent.member_id == m.id))]
        assert kinds.count("excluded") == 2 and kinds.count("exclusion_revoked") == 1


def test_approval_needs_every_echelon_then_launches_and_records_counts(engine: Engine) -> None:
    admit(engine, 3, echelon="93")
    admit(engine, 2, start=10, echelon="75")
    excluded = members(engine)[0]
    with session_scope(engine) as s:
        lst = the_list(s)
        exclude(
            session=s, target_list=lst, member_id=excluded.id or 0, reason="hospitalised", by="x"
        )
        sign_off(session=s, target_list=lst, echelon="93", by="lead-93")
        with pytest.raises(ValidationError, match="not every échelon has validated its list: 75"):
            approve(session=s, target_list=lst, by="manager", today=TODAY)
        sign_off(session=s, target_list=lst, echelon="75", by="lead-75")
        counts = approve(session=s, target_list=lst, by="manager", today=TODAY)
        assert counts == {
            "75": {"launched": 2, "excluded": 0},
            "93": {"launched": 2, "excluded": 1},
        }
        assert (lst.state, lst.decided_by) == ("approved", "manager")
        assert s.get(Campaign, D.id).launched_at is not None  # type: ignore[union-attr]
        with pytest.raises(ValidationError, match="approved"):
            exclude(
                session=s,
                target_list=lst,
                member_id=excluded.id or 0,
                reason="other",
                by="x",
                note="n",
            )
    statuses = {m.id: (m.status, m.status_reason) for m in members(engine)}
    assert statuses[excluded.id] == (EXITED, "excluded_hospitalised")
    assert sorted(v[0] for v in statuses.values()) == [ACTIVE] * 4 + [EXITED]
    # Daily increments after launch go straight into the cascade.
    admit(engine, 1, start=20, today=TODAY + timedelta(days=2))
    assert members(engine)[-1].status == ACTIVE
    tick(engine=engine, definition=D, today=ANCHOR - timedelta(days=60))
    with session_scope(engine) as s:
        called = {a.member_id for a in s.exec(select(Action).where(Action.channel == "phone"))}
    reachable = {m.id for m in members(engine) if m.status == ACTIVE and not m.holdout}
    assert excluded.id not in called and called == reachable and len(reachable) >= 4


def test_a_list_not_approved_in_time_is_not_launched_and_says_why(engine: Engine) -> None:
    admit(engine, 3, echelon="93")
    with session_scope(engine) as s:
        sign_off(session=s, target_list=the_list(s), echelon="93", by="lead-93")
        assert expire_overdue(session=s, campaign_id=D.id, today=TODAY + timedelta(days=5)) is None
    admit(engine, 2, start=10, echelon="75", today=TODAY + timedelta(days=6))
    with session_scope(engine) as s:
        lst = s.exec(select(TargetList).order_by(TargetList.id)).first()  # type: ignore[arg-type]
        assert lst is not None
        assert lst.state == "expired"
        assert lst.reason == "not approved by its deadline 2026-03-07"
        assert s.get(Campaign, D.id).launched_at is None  # type: ignore[union-attr]
        new = the_list(s)  # the newcomers wait on a new list
        assert new.id != lst.id
    first_three = members(engine)[:3]
    assert {(m.status, m.status_reason) for m in first_three} == {(EXITED, "list_expired")}


def test_a_rejected_list_contacts_nobody(engine: Engine) -> None:
    admit(engine, 2)
    with session_scope(engine) as s:
        reject(
            session=s, target_list=the_list(s), by="manager", reason="wrong extract", today=TODAY
        )
    assert {(m.status, m.status_reason) for m in members(engine)} == {(EXITED, "list_rejected")}


def test_the_flow_waits_for_the_managers_decision(prefect_harness: None, platform: Path) -> None:
    from prefect.flow_runs import resume_flow_run

    from flows.validation import list_validation

    engine = get_engine()
    admit(engine, 3, echelon="93", today=date.today())
    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: result.update(list_validation(campaign_id=D.id, poll_interval=1))
    )
    worker.start()
    run_id = None
    for _ in range(120):
        with session_scope(engine) as s:
            run_id = the_list(s).flow_run_id
        if run_id:
            break
        time.sleep(0.5)
    assert run_id, "the flow did not record its run on the list"
    with session_scope(engine) as s:
        sign_off(session=s, target_list=the_list(s), echelon="93", by="lead-93")
    for _ in range(60):
        try:
            resume_flow_run(uuid.UUID(run_id), run_input={"approved": True, "approver": "mgr"})
            break
        except Exception:  # not paused yet
            time.sleep(0.5)
    worker.join(timeout=120)
    assert result["state"] == "approved"
    assert result["counts"] == {"93": {"launched": 3, "excluded": 0}}
    assert {m.status for m in members(engine)} == {ACTIVE}


def test_the_flow_expires_the_list_when_nobody_decides(
    prefect_harness: None, platform: Path
) -> None:
    from flows.validation import list_validation

    engine = get_engine()
    admit(engine, 2, echelon="93", today=date.today())
    out = list_validation(campaign_id=D.id, poll_interval=1, max_wait_seconds=2)
    assert out["state"] == "expired" and "not approved by its deadline" in out["detail"]
    assert "93" in out["detail"]
    assert {m.status_reason for m in members(engine)} == {"list_expired"}
