"""Ending a member's cascade: one place, so every path records the same facts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import update
from sqlmodel import Session, col

from campaigns.models import ACTIVE, CANCELLED, PENDING, QUEUED, Action, Member, MemberEvent


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
    if member.status not in (ACTIVE, PENDING):
        return False
    member.status, member.status_reason, member.status_on = status, reason, today
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
