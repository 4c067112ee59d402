"""Many advisers at once on PostgreSQL: nobody claimed twice, no outcome lost."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bench.console.load import prepare, run


@pytest.mark.postgres
def test_concurrent_advisers_never_share_a_person(pg_engine: Engine) -> None:
    from tests.conftest import _truncate

    _truncate(pg_engine)
    prepare(pg_engine, 400)
    out = run(pg_engine, advisers=12, seconds=4)
    assert out["errors"] == []
    assert out["claims"] > 50
    assert out["double_claims"] == 0
    assert out["lost_outcomes"] == 0 and out["outcomes_recorded"] == out["claims"]


def _two_claims_at_once(engine: Engine) -> tuple[Any, Any]:
    """Adviser A claims and, before A commits, adviser B claims: both claims, A's first.

    The queue alone: the use case's audit event is left out."""
    from sqlmodel import Session

    from bench.console.load import NOW
    from campaigns.calls.card import registered_definitions
    from campaigns.calls.queue import claim_next

    with Session(engine) as first, Session(engine) as second:
        defs = registered_definitions(session=first)
        a = claim_next(session=first, adviser="adviser-a", now=NOW, definitions=defs)
        b = claim_next(session=second, adviser="adviser-b", now=NOW, definitions=defs)
        second.commit()
        first.commit()
    assert a is not None and b is not None
    return a, b


@pytest.mark.postgres
def test_a_claim_in_progress_hides_only_its_own_call(pg_engine: Engine) -> None:
    """While one adviser's claim is not yet committed, the next adviser gets the next call in
    the queue's order, not one a page further down (a claim locks one candidate, not twenty)."""
    from sqlmodel import Session, col, select

    from campaigns.ledger.models import QUEUED, Action
    from tests.conftest import _truncate

    _truncate(pg_engine)
    prepare(pg_engine, 400)
    with Session(pg_engine) as s:
        order = s.exec(
            select(Action.id)
            .where(Action.channel == "phone", Action.state == QUEUED)
            .order_by(
                col(Action.due_at).is_(None),
                col(Action.priority).desc(),
                col(Action.anchor_date),
                col(Action.id),
            )
        ).all()
    assert len(order) > 30
    a, b = _two_claims_at_once(pg_engine)
    assert a.action_id == order[0]
    assert b.action_id == order[1]


@pytest.mark.postgres
def test_a_persons_other_call_is_passed_over_while_one_is_being_claimed(
    pg_engine: Engine,
) -> None:
    """Two calls of one person at the head of the queue: while adviser A's claim of the first
    is not committed, adviser B gets the next person, not the person's other call (a snapshot
    does not see A's claim; the person's row, locked with the call, does)."""
    from datetime import timedelta

    from sqlmodel import Session, col, select

    from bench.console.load import NOW
    from campaigns.ledger.models import QUEUED, Action
    from tests.conftest import _truncate

    _truncate(pg_engine)
    prepare(pg_engine, 400)
    with Session(pg_engine) as s:
        order = s.exec(
            select(Action)
            .where(Action.channel == "phone", Action.state == QUEUED)
            .order_by(col(Action.priority).desc(), col(Action.anchor_date), col(Action.id))
        ).all()
        head, second = order[0], next(a for a in order if a.person_id != order[0].person_id)
        # The same person's callback, due now: it goes before every other call.
        again = Action(
            **head.model_dump(exclude={"id", "key", "attempt", "due_at"}),
            key=f"{head.key}:rappel",
            attempt=head.attempt + 1,
            due_at=NOW - timedelta(minutes=1),
        )
        s.add(again)
        s.commit()
        again_id, head_id, second_id = again.id, head.id, second.id
    a, b = _two_claims_at_once(pg_engine)
    assert a.action_id == again_id
    assert b.action_id not in (again_id, head_id) and b.action_id == second_id
