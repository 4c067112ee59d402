"""Why a person was or was not contacted in a campaign, from what the ledger recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import or_
from sqlmodel import Session, col, select

from campaigns.definition.reasons import explain
from campaigns.ledger.models import (
    OBSERVED_CHANNEL,
    Action,
    Enrolment,
    Member,
    MemberEvent,
    Opposition,
    Person,
)
from campaigns.ledger.vocabulary import ActionState


@dataclass
class Story:
    """A person's path through a campaign, as dated lines a user can read."""

    found: bool
    status: str = ""
    lines: list[tuple[date, str]] = field(default_factory=list)


_STATES: dict[str, str] = {
    ActionState.DONE: "done",
    ActionState.SENT: "sent",
    ActionState.DELIVERED: "delivered",
    ActionState.SKIPPED: "not played",
    ActionState.CANCELLED: "cancelled",
    ActionState.FAILED_FINAL: "failed",
    ActionState.QUEUED: "planned",
}


def _words(reason: str) -> str:
    """A reason code with its plain words (e.g. `opposed_all (la personne s'oppose …)`)."""
    words = explain(reason)
    return reason if words == reason else f"{reason} ({words})"


def why(*, session: Session, campaign_id: str, ben_nir_psa: str, ben_rng_gem: int) -> Story:
    """Entry, each planned, skipped, sent or cancelled action with its reason, exit."""
    person = session.exec(
        select(Person).where(Person.ben_nir_psa == ben_nir_psa, Person.ben_rng_gem == ben_rng_gem)
    ).first()
    if person is None:
        return Story(found=False)
    member = session.exec(
        select(Member).where(Member.campaign_id == campaign_id, Member.person_id == person.id)
    ).first()
    if member is None:
        return Story(found=False)
    story = Story(
        found=True,
        status=f"{member.status}"
        + (f" ({_words(member.status_reason)})" if member.status_reason else ""),
    )
    if member.holdout:
        story.lines.append((member.entered_on, "in the holdout group: never contacted by design"))
    for e in session.exec(
        select(MemberEvent).where(MemberEvent.member_id == member.id).order_by(col(MemberEvent.id))
    ):
        if e.kind == "contact_deferred":
            until = e.detail.get("until")
            story.lines.append(
                (
                    e.on,
                    f"{e.detail.get('step')} ({e.detail.get('channel')}) not contacted now"
                    + (f", deferred until {until}" if until else "")
                    + f": {_words(e.detail.get('reason') or '')}",
                )
            )
            continue
        if e.kind == "left" and e.detail.get("reason"):
            story.lines.append(
                (
                    e.on,
                    f"left ({e.detail.get('status')}): {_words(e.detail['reason'])}"
                    + f", from {e.detail.get('source')}",
                )
            )
            continue
        story.lines.append((e.on, f"{e.kind}: {e.detail.get('text') or e.detail}"))
    for a in session.exec(
        select(Action).where(Action.member_id == member.id).order_by(col(Action.id))
    ):
        what = f"{a.step} #{a.attempt} ({a.channel}) {_STATES.get(a.state, a.state)}"
        why_ = a.outcome or a.reason or a.error
        if a.reason and not a.outcome:
            why_ = _words(a.reason)
        story.lines.append((a.done_on or a.due_on, what + (f": {why_}" if why_ else "")))
    for o in session.exec(
        select(Opposition).where(
            Opposition.ben_nir_psa == ben_nir_psa, Opposition.ben_rng_gem == ben_rng_gem
        )
    ):
        story.lines.append((o.opposed_on, f"opposition ({o.canal}) from {o.source}"))
    for en in session.exec(
        select(Enrolment).where(
            Enrolment.ben_nir_psa == ben_nir_psa,
            Enrolment.ben_rng_gem == ben_rng_gem,
            # This campaign's goal rows, and the rows older than per-campaign crediting.
            or_(col(Enrolment.campaign_id) == campaign_id, col(Enrolment.campaign_id).is_(None)),
        )
    ):
        if en.channel == OBSERVED_CHANNEL:
            story.lines.append((en.enrolled_on, f"goal observed in the extract ({en.programme})"))
        else:
            story.lines.append((en.enrolled_on, f"enrolled in {en.programme} ({en.channel})"))
    story.lines.sort(key=lambda x: x[0])
    return story
