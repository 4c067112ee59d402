"""Members split into contiguous id ranges, so that several flow runs (on several workers) share
a stage: each range is planned by one run, and no member is in two ranges."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.ledger.models import ACTIVE, Member


def member_ranges(*, session: Session, campaign_id: str, parts: int) -> list[tuple[int, int]]:
    """Up to `parts` id ranges of the campaign's active members, with about as many in each."""
    if parts < 1:
        raise ValueError(f"nombre de partitions invalide : {parts} (au moins 1)")
    # ntile over the ids: one pass in the database, whatever the number of members.
    part = func.ntile(parts).over(order_by=col(Member.id)).label("part")
    ranked = (
        select(col(Member.id).label("id"), part)
        .where(Member.campaign_id == campaign_id, Member.status == ACTIVE)
        .subquery()
    )
    rows = session.exec(
        select(func.min(ranked.c.id), func.max(ranked.c.id))
        .group_by(ranked.c.part)
        .order_by(ranked.c.part)
    ).all()
    return [(int(lo), int(hi)) for lo, hi in rows]
