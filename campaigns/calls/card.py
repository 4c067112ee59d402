"""The call card beyond the queue: the call held, the channels tried, the offers made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from campaigns.clock import PARIS, paris_today
from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.offers import load_catalogue
from campaigns.definition.vocabulary import Channel
from campaigns.ledger.models import (
    DONE,
    QUEUED,
    SUCCESS_STATES,
    Action,
    Campaign,
    MemberEvent,
    Person,
)


def registered_definitions(*, session: Session) -> dict[str, CampaignDefinition]:
    """The definition of every campaign in the ledger, by id (the queue ranks across them)."""
    return registered_campaigns(session=session)[0]


def registered_campaigns(*, session: Session) -> tuple[dict[str, CampaignDefinition], set[str]]:
    """Every campaign of the ledger's definition by id, and those paused or ended: one read
    for the claim, which needs both."""
    rows = session.exec(select(Campaign)).all()
    halted = {c.id for c in rows if c.paused_at is not None or c.ended_at is not None}
    return {c.id: campaign_by_id(c.id).definition for c in rows}, halted


PAUSED_CALL = (
    "campagne suspendue par son responsable : cet appel est rendu à la liste, il sera proposé "
    "de nouveau à la reprise de la campagne"
)


def released_by_pause(*, session: Session, action: Action) -> bool:
    """Whether the call was given back to the queue because its campaign is paused."""
    if action.state != QUEUED or action.claimed_by is not None:
        return False
    row = session.get(Campaign, action.campaign_id)
    return row is not None and row.paused_at is not None


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


def holds_call_for(*, session: Session, member_id: int, adviser: str, now: datetime) -> bool:
    """Whether this adviser holds a call of this member right now (their person to call): a
    call closed or whose lease ran out opens the person's page no more."""
    claimed = session.exec(
        select(Action).where(Action.member_id == member_id, Action.claimed_by == adviser)
    ).all()
    return any(holds_live_claim(a, adviser, now) for a in claimed)


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


@dataclass(frozen=True)
class EarlierCall:
    """A call already made to the person, as the card shows it."""

    done_on: date | None
    step: str
    attempt: int
    outcome: str | None
    notes: str | None
    adviser: str | None
    callback_at: datetime | None


def earlier_calls(*, session: Session, person_id: int, before: int) -> list[EarlierCall]:
    """The person's calls already closed (every campaign), newest first, with their notes."""
    rows = session.exec(
        select(Action)
        .where(
            Action.person_id == person_id,
            Action.channel == Channel.PHONE,
            Action.state == DONE,
            col(Action.id) != before,
        )
        .order_by(col(Action.done_on).desc(), col(Action.id).desc())
        .limit(20)
    ).all()
    return [
        EarlierCall(
            a.done_on, a.step, a.attempt, a.outcome, a.outcome_notes, a.claimed_by, a.callback_at
        )
        for a in rows
    ]


@dataclass(frozen=True)
class Callback:
    """A callback an adviser promised: when, to whom, and whether the call is queued."""

    at: datetime
    action_id: int
    person_id: int
    name: str
    queued: bool


def upcoming_callbacks(*, session: Session, adviser: str, now: datetime) -> list[Callback]:
    """ "Mes rappels": the callbacks this adviser set for today or later, soonest first, each
    with whether its call is already in the queue."""
    start = datetime.combine(paris_today(now), time(0), tzinfo=PARIS)
    done = session.exec(
        select(Action, Person)
        .join(Person, col(Person.id) == col(Action.person_id))
        .options(defer(Person.nir), defer(Person.telephone), defer(Person.email))  # type: ignore[arg-type]
        .where(
            Action.claimed_by == adviser,
            Action.outcome == "callback",
            col(Action.callback_at) >= start,
        )
        .order_by(col(Action.callback_at))
        .limit(100)
    ).all()
    if not done:
        return []
    queued = {
        (a.member_id, a.step, a.attempt)
        for a in session.exec(
            select(Action).where(
                col(Action.member_id).in_({a.member_id for a, _ in done}),
                Action.state == QUEUED,
                col(Action.due_at).is_not(None),
            )
        )
    }
    return [
        Callback(
            a.callback_at or start,
            a.id or 0,
            p.id or 0,
            f"{p.prenom} {p.nom}",
            (a.member_id, a.step, a.attempt + 1) in queued,
        )
        for a, p in done
    ]
