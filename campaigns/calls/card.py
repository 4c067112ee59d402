"""The call card beyond the queue: the call held, the channels tried, the offers made."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.offers import load_catalogue
from campaigns.ledger.models import QUEUED, SUCCESS_STATES, Action, Campaign, MemberEvent


def registered_definitions(*, session: Session) -> dict[str, CampaignDefinition]:
    """The definition of every campaign in the ledger, by id (the queue ranks across them)."""
    return {c.id: campaign_by_id(c.id).definition for c in session.exec(select(Campaign))}


def claimed_call(*, session: Session, action_id: int, adviser: str) -> Action | None:
    """The action if this adviser holds it, else None."""
    a = session.get(Action, action_id)
    if a is None or a.claimed_by != adviser:
        return None
    return a


def holds_live_claim(a: Action, adviser: str, now: datetime) -> bool:
    """Whether this adviser holds this call right now: claimed by them, still open, lease running
    (a closed call, or one whose lease ran out, shows no phone number nor NIR any more)."""
    until = a.lease_until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return a.claimed_by == adviser and a.state == QUEUED and until is not None and until >= now


def holds_call_for(*, session: Session, member_id: int, adviser: str) -> bool:
    """Whether this adviser has claimed an action of this member (their person to call)."""
    held = session.exec(
        select(Action).where(Action.member_id == member_id, Action.claimed_by == adviser)
    ).first()
    return held is not None


def tried_channels(*, session: Session, member_id: int) -> list[str]:
    """The channels that already reached this member (sent, delivered or done), sorted."""
    rows = session.exec(
        select(Action.channel).where(
            Action.member_id == member_id, col(Action.state).in_(SUCCESS_STATES)
        )
    )
    return sorted(set(rows))


def outcomes_on(*, session: Session, adviser: str, day: date) -> dict[str | None, int]:
    """How many calls this adviser closed on this day, per outcome."""
    rows = session.exec(
        select(Action.outcome, func.count())
        .where(Action.claimed_by == adviser, Action.done_on == day)
        .group_by(col(Action.outcome))
    ).all()
    return dict(rows)


def record_offers_made(
    *, session: Session, member_id: int, action_id: int, offers: list[str], by: str, on: date
) -> list[str]:
    """One `offer_made` event per catalogue offer proposed on the call (unknown ids dropped)."""
    catalogue = load_catalogue()
    made = [o for o in offers if catalogue.get(o) is not None]
    for offer_id in made:
        session.add(
            MemberEvent(
                member_id=member_id,
                on=on,
                kind="offer_made",
                detail={"offer": offer_id, "by": by, "action": action_id},
            )
        )
    return made
