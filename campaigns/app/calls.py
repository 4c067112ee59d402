"""The adviser's call as use cases: the claim, the outcome, "Passer" and the reveal."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from campaigns.calls.card import (
    PAUSED_CALL,
    holds_live_claim,
    record_offers_made,
    registered_campaigns,
    released_by_pause,
)
from campaigns.calls.queue import Claim, NotYourCall, claim_next, record_outcome, skip
from campaigns.cascade.tick import tick_batch
from campaigns.clock import paris_today, utcnow
from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.audit import record
from campaigns.ledger.models import ACTIVE, QUEUED, Action, Member, Person


def _own_call(session: Session, action_id: int, actor: str) -> Action:
    """The call this adviser holds: the one check of the reveal and the outcome (the web maps
    the refusal to 403)."""
    a = session.get(Action, action_id)
    if a is not None and a.claimed_by != actor and released_by_pause(session=session, action=a):
        raise NotYourCall(PAUSED_CALL)
    if a is None or a.claimed_by != actor:
        raise NotYourCall("cet appel ne vous est pas attribué")
    return a


def record_call_outcome(
    *,
    session: Session,
    actor: str,
    action_id: int,
    outcome: str,
    now: datetime,
    notes: str | None = None,
    callback_at: datetime | None = None,
    offers: list[str] | None = None,
    definition: CampaignDefinition | None = None,
) -> list[str]:
    """Record the outcome of the adviser's call and the offers made; the offers kept."""
    a = _own_call(session, action_id, actor)
    record_outcome(
        session=session,
        action_id=action_id,
        adviser=actor,
        outcome=outcome,
        now=now,
        definition=definition or campaign_by_id(a.campaign_id).definition,
        notes=notes,
        callback_at=callback_at,
    )
    callback = requeue_callback(session=session, action=a, definition=definition, now=now)
    made = record_offers_made(
        session=session,
        member_id=a.member_id,
        action_id=action_id,
        offers=offers or [],
        by=actor,
        on=paris_today(now),
    )
    record(
        session=session,
        actor=actor,
        action="outcome",
        target=f"action/{action_id}",
        detail={"outcome": outcome, "offers": made, "requeued": callback},
    )  # at the wall clock, like the reveal before it: the board times the call between them
    return made


def requeue_callback(
    *,
    session: Session,
    action: Action,
    now: datetime,
    definition: CampaignDefinition | None = None,
) -> bool:
    """A callback for later today is queued at once, not by tomorrow's tick: the tick's own
    code plans this one member now (idempotent: tomorrow's tick finds the call on record).
    Whether a call was queued for the callback."""
    session.refresh(action)
    if action.outcome != "callback" or action.callback_at is None:
        return False
    member = session.get(Member, action.member_id)
    if member is None or member.status != ACTIVE:
        return False
    today = paris_today(now)
    if paris_today(action.callback_at) != today:
        return False  # a later day: the tick of that morning queues it
    d = definition or campaign_by_id(action.campaign_id).definition
    tick_batch(
        session=session, definition=d, lo=member.id or 0, hi=member.id or 0, today=today, now=now
    )
    queued = session.exec(
        select(Action.id).where(
            Action.member_id == action.member_id,
            Action.step == action.step,
            Action.attempt == action.attempt + 1,
            Action.state == QUEUED,
        )
    ).first()
    return queued is not None


def claim_call(*, session: Session, actor: str, now: datetime) -> Claim | None:
    """The adviser's next call (the one they still hold first), audited; None if nobody is
    callable now."""
    definitions, halted = registered_campaigns(session=session)
    claim = claim_next(
        session=session, adviser=actor, now=now, definitions=definitions, halted=halted
    )
    if claim is not None:
        record(session=session, actor=actor, action="claim", target=f"action/{claim.action_id}")
    return claim


def skip_call(*, session: Session, actor: str, action_id: int, now: datetime) -> None:
    """ "Passer": the call goes back to the list, and not to this adviser again today."""
    _own_call(session, action_id, actor)
    skip(session=session, action_id=action_id, adviser=actor, now=now)
    record(session=session, actor=actor, action="release", target=f"action/{action_id}")


def reveal_contact(
    *, session: Session, actor: str, action_id: int, now: datetime | None = None
) -> Person:
    """Show the adviser the full number and NIR of the person they are calling, audited: only
    under a live claim (not on a call already closed, nor once the lease ran out at `now`)."""
    now = now or utcnow()
    a = _own_call(session, action_id, actor)
    if not holds_live_claim(a, actor, now):
        raise NotYourCall("cet appel n'est plus en cours : le numéro et le NIR restent masqués")
    person = session.get(Person, a.person_id)
    assert person is not None
    record(
        session=session,
        actor=actor,
        action="reveal_contact",
        target=f"person/{a.person_id}",
        detail={"action": action_id},
    )  # at the wall clock, like the outcome after it (the board times the call between them)
    return person
