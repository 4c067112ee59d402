"""Ending a member's cascade: one place, so every path records the same facts."""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import Date, String, insert, literal, update
from sqlmodel import Session, col, select

from campaigns.ledger.db import among
from campaigns.ledger.models import ACTIVE, CANCELLED, PENDING, QUEUED, Action, Member, MemberEvent


def close_member(
    *,
    session: Session,
    member: Member,
    status: str,
    reason: str,
    today: date,
    source: str,
    now: datetime,
) -> bool:
    """Take an active (or pending) member out of the cascade and cancel what is queued."""
    # Compare-and-set, so that two writers closing the same member (two ticks, a call outcome
    # and a feed) record one departure, not two.
    closed = session.execute(
        update(Member)
        .where(col(Member.id) == member.id, col(Member.status).in_((ACTIVE, PENDING)))
        .values(status=status, status_reason=reason, status_on=today)
        .returning(col(Member.id))
        .execution_options(synchronize_session=False)
    ).first()
    session.expire(member, ["status", "status_reason", "status_on"])
    if closed is None:
        return False
    session.add(
        MemberEvent(
            member_id=member.id or 0,
            on=today,
            kind="left",
            detail={"status": status, "reason": reason, "source": source},
        )
    )
    session.execute(
        update(Action)
        .where(col(Action.member_id) == member.id, col(Action.state) == QUEUED)
        .values(
            state=CANCELLED,
            reason=f"member_{reason}",
            updated_at=now,
            claimed_by=None,
            lease_until=None,
        )
    )
    return True


# Member ids per statement: under SQLite's bound-parameter limit, few round trips on PostgreSQL.
_CLOSE_CHUNK = 5000


def close_members(
    *,
    session: Session,
    member_ids: list[int],
    status: str,
    reason: str,
    today: date,
    source: str,
    now: datetime,
) -> int:
    """`close_member` for many members at once, set-based; how many were closed.

    The same facts as one by one: compare-and-set on the status, one `left` event for each
    member closed here, their queued actions cancelled."""
    closed = 0
    detail = {"status": status, "reason": reason, "source": source}
    if session.get_bind().dialect.name == "postgresql":
        session.flush()  # the statement goes to the connection: pending objects first
        for i in range(0, len(member_ids), _CLOSE_CHUNK):
            closed += _close_chunk_pg(
                session, member_ids[i : i + _CLOSE_CHUNK], status, reason, detail, today, now
            )
        return closed
    for i in range(0, len(member_ids), _CLOSE_CHUNK):
        chunk = member_ids[i : i + _CLOSE_CHUNK]
        done = [
            int(mid)
            for (mid,) in session.execute(
                update(Member)
                .where(
                    among(session, col(Member.id), chunk), col(Member.status).in_((ACTIVE, PENDING))
                )
                .values(status=status, status_reason=reason, status_on=today)
                .returning(col(Member.id))
                .execution_options(synchronize_session=False)
            ).all()
        ]
        if not done:
            continue
        closed += len(done)
        # One INSERT … SELECT, not thousands of rows sent one by one (an observation closes
        # hundreds of thousands of members at once).
        session.execute(
            insert(MemberEvent).from_select(
                ["member_id", "on", "kind", "detail"],
                select(
                    col(Member.id),
                    literal(today, Date),
                    literal("left", String),
                    literal(detail, MemberEvent.__table__.c.detail.type),  # type: ignore[attr-defined]
                )
                .where(among(session, col(Member.id), done))
                .order_by(col(Member.id)),
            )
        )
        session.execute(
            update(Action)
            .where(among(session, col(Action.member_id), done), col(Action.state) == QUEUED)
            .values(
                state=CANCELLED,
                reason=f"member_{reason}",
                updated_at=now,
                claimed_by=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )
    return closed


# PostgreSQL: the three writes of a chunk in one statement (data-modifying CTEs), so the ids
# closed never travel back and forth.
_CLOSE_PG = """
WITH closed AS (
    UPDATE member SET status = %(status)s, status_reason = %(reason)s, status_on = %(today)s
    WHERE id = ANY(%(ids)s) AND status IN (%(active)s, %(pending)s)
    RETURNING id
), events AS (
    INSERT INTO memberevent (member_id, "on", kind, detail)
    SELECT id, %(today)s, 'left', %(detail)s::json FROM closed ORDER BY id
), cancelled AS (
    UPDATE action SET state = %(cancelled)s, reason = %(why)s, updated_at = %(now)s,
        claimed_by = NULL, lease_until = NULL
    WHERE member_id IN (SELECT id FROM closed) AND state = %(queued)s
)
SELECT count(*) FROM closed
"""


def _close_chunk_pg(
    session: Session,
    ids: list[int],
    status: str,
    reason: str,
    detail: dict[str, str],
    today: date,
    now: datetime,
) -> int:
    """`close_members` for one chunk on PostgreSQL: one statement; how many were closed."""
    row = (
        session.connection()
        .exec_driver_sql(
            _CLOSE_PG,
            {
                "ids": [int(i) for i in ids],
                "status": status,
                "reason": reason,
                "today": today,
                "active": ACTIVE,
                "pending": PENDING,
                "detail": json.dumps(detail),
                "cancelled": CANCELLED,
                "why": f"member_{reason}",
                "now": now,
                "queued": QUEUED,
            },
        )
        .one()
    )
    return int(row[0])


def member_history(*, session: Session, member_id: int) -> tuple[list[MemberEvent], list[Action]]:
    """A member's events and actions, each oldest first (the person page)."""
    events = session.exec(
        select(MemberEvent).where(MemberEvent.member_id == member_id).order_by(col(MemberEvent.id))
    ).all()
    actions = session.exec(
        select(Action).where(Action.member_id == member_id).order_by(col(Action.id))
    ).all()
    return list(events), list(actions)
