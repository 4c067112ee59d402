"""The adviser's call as use cases: the outcome of a call and the reveal of a contact."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from campaigns.calls.card import holds_live_claim, record_offers_made
from campaigns.calls.queue import NotYourCall, record_outcome
from campaigns.clock import paris_today, utcnow
from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.audit import record
from campaigns.ledger.models import Action, Person


def _own_call(session: Session, action_id: int, actor: str) -> Action:
    """The call this adviser holds: the one check of the reveal and the outcome (the web maps
    the refusal to 403)."""
    a = session.get(Action, action_id)
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
        detail={"outcome": outcome, "offers": made},
    )  # at the wall clock, like the reveal before it: the board times the call between them
    return made


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
