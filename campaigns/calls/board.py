"""The supervisor's live board: today's calls per campaign and échelon, who is calling."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.clock import PARIS, paris_today
from campaigns.definition.model import REACHED_OUTCOMES
from campaigns.ledger.models import DONE, QUEUED, Action, AuditEvent, Member, User


def _empty_row() -> dict[str, Any]:
    return {
        "calls": 0,
        "reached": 0,
        "queue": 0,
        "callbacks_due": 0,
        "enrolled_on_call": 0,
        "outcomes": defaultdict(int),
    }


def board_rows(*, session: Session, now: datetime) -> dict[str, Any]:
    """Today's figures per campaign and échelon, and who holds a call now."""
    s = session
    today = paris_today(now)
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(_empty_row)
    for cid, echelon, outcome, n in s.exec(
        select(Action.campaign_id, Member.echelon, Action.outcome, func.count())
        .join(Member, col(Member.id) == col(Action.member_id))
        .where(Action.channel == "phone", Action.state == DONE, Action.done_on == today)
        .group_by(col(Action.campaign_id), col(Member.echelon), col(Action.outcome))
    ):
        row = per[(cid, echelon)]
        row["calls"] += n
        row["outcomes"][outcome] += n
        if outcome in REACHED_OUTCOMES:
            row["reached"] += n
        if outcome == "enrolled_on_call":
            row["enrolled_on_call"] += n
    for cid, echelon, due_at, n in s.exec(
        select(Action.campaign_id, Member.echelon, Action.due_at, func.count())
        .join(Member, col(Member.id) == col(Action.member_id))
        .where(Action.channel == "phone", Action.state == QUEUED, col(Action.due_on) <= today)
        .group_by(col(Action.campaign_id), col(Member.echelon), col(Action.due_at))
    ):
        per[(cid, echelon)]["queue"] += n
        if due_at is not None:
            per[(cid, echelon)]["callbacks_due"] += n
    holders = s.exec(
        select(Action.claimed_by, Action.campaign_id, Action.lease_until).where(
            Action.state == QUEUED,
            col(Action.claimed_by).is_not(None),
            col(Action.lease_until) >= now,
        )
    ).all()
    since = now - timedelta(hours=1)
    last_hour = s.exec(
        select(func.count())
        .select_from(Action)
        .where(Action.channel == "phone", Action.state == DONE, col(Action.updated_at) >= since)
    ).one()
    return {
        "per": dict(sorted(per.items())),
        "holders": holders,
        "last_hour": last_hour,
        **advisers_today(session=s, now=now, in_call={h[0] for h in holders}),
    }


def advisers_today(*, session: Session, now: datetime, in_call: set[str | None]) -> dict[str, Any]:
    """Who is connected and in what state; mean handling time (number shown → outcome saved)."""
    start = datetime.combine(paris_today(now), datetime.min.time(), tzinfo=PARIS)
    events = session.exec(
        select(AuditEvent)
        .where(
            col(AuditEvent.at) >= start,
            col(AuditEvent.action).in_(["login", "logout", "reveal_contact", "outcome"]),
        )
        .order_by(col(AuditEvent.id))
    ).all()
    advisers = set(session.exec(select(User.username).where(User.role == "adviser")).all())
    connected: dict[str, bool] = {}
    revealed: dict[str, datetime] = {}
    handling: list[float] = []
    for e in events:
        if e.actor not in advisers:
            continue
        if e.action in ("login", "logout"):
            connected[e.actor] = e.action == "login"
        elif e.action == "reveal_contact":
            revealed[f"action/{e.detail.get('action')}"] = e.at
        elif e.action == "outcome" and e.target in revealed:
            handling.append((e.at - revealed.pop(e.target)).total_seconds())
    states = {
        who: ("en appel" if who in in_call else "disponible")
        for who, on in sorted(connected.items())
        if on
    }
    mean = sum(handling) / len(handling) if handling else None
    return {"advisers": states, "mean_handling_s": mean, "handled": len(handling)}
