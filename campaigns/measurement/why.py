"""Why a person was or was not contacted in a campaign, from what the ledger recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import or_
from sqlmodel import Session, col, select

from campaigns.definition.reasons import OUTCOME_LABELS, explain
from campaigns.ledger.models import (
    OBSERVED_CHANNEL,
    Action,
    Enrolment,
    Member,
    MemberEvent,
    Opposition,
    Person,
)
from campaigns.ledger.vocabulary import ACTION_STATE_LABELS


@dataclass
class Story:
    """A person's path through a campaign, as dated lines a user can read."""

    found: bool
    status: str = ""
    lines: list[tuple[date, str]] = field(default_factory=list)


# A member's status, in the words `relance why` prints.
_STATUS = {
    "pending": "en attente de validation locale",
    "active": "en cours",
    "goal": "objectif atteint",
    "exited": "sortie",
    "completed": "parcours terminé",
}
# The events recorded on a member, in words (an unknown kind is shown as its code).
_KINDS = {"entered": "entrée dans la campagne", "exited": "sortie", "goal": "objectif atteint"}


def _status(code: object) -> str:
    return _STATUS.get(str(code), str(code))


def _day(text: object) -> str:
    """An ISO date as JJ/MM/AAAA (anything else unchanged)."""
    try:
        return date.fromisoformat(str(text)).strftime("%d/%m/%Y")
    except ValueError:
        return str(text)


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
        status=_status(member.status)
        + (f" ({_words(member.status_reason)})" if member.status_reason else ""),
    )
    if member.holdout:
        story.lines.append(
            (member.entered_on, "dans le groupe témoin : jamais contacté, par construction")
        )
    for e in session.exec(
        select(MemberEvent).where(MemberEvent.member_id == member.id).order_by(col(MemberEvent.id))
    ):
        if e.kind == "contact_deferred":
            until = e.detail.get("until")
            story.lines.append(
                (
                    e.on,
                    f"{e.detail.get('step')} ({e.detail.get('channel')}) "
                    + "pas contacté pour l'instant"
                    + (f", reporté au {_day(until)}" if until else "")
                    + f" : {_words(e.detail.get('reason') or '')}",
                )
            )
            continue
        if e.kind == "left" and e.detail.get("reason"):
            story.lines.append(
                (
                    e.on,
                    f"sortie ({_status(e.detail.get('status'))}) : "
                    + f"{_words(e.detail['reason'])}, source : {e.detail.get('source')}",
                )
            )
            continue
        kind = _KINDS.get(e.kind, e.kind)
        story.lines.append((e.on, f"{kind} : {e.detail.get('text') or e.detail}"))
    for a in session.exec(
        select(Action).where(Action.member_id == member.id).order_by(col(Action.id))
    ):
        what = f"{a.step} n°{a.attempt} ({a.channel}) {ACTION_STATE_LABELS.get(a.state, a.state)}"
        why_ = (
            (OUTCOME_LABELS.get(a.outcome, a.outcome) if a.outcome else None) or a.reason or a.error
        )
        if a.reason and not a.outcome:
            why_ = _words(a.reason)
        story.lines.append((a.done_on or a.due_on, what + (f" : {why_}" if why_ else "")))
    for o in session.exec(
        select(Opposition).where(
            Opposition.ben_nir_psa == ben_nir_psa, Opposition.ben_rng_gem == ben_rng_gem
        )
    ):
        story.lines.append((o.opposed_on, f"opposition ({o.canal}), source : {o.source}"))
    for en in session.exec(
        select(Enrolment).where(
            Enrolment.ben_nir_psa == ben_nir_psa,
            Enrolment.ben_rng_gem == ben_rng_gem,
            # This campaign's goal rows, and the rows older than per-campaign crediting.
            or_(col(Enrolment.campaign_id) == campaign_id, col(Enrolment.campaign_id).is_(None)),
        )
    ):
        if en.channel == OBSERVED_CHANNEL:
            story.lines.append(
                (en.enrolled_on, f"objectif constaté dans l'extrait ({en.programme})")
            )
        else:
            story.lines.append((en.enrolled_on, f"adhésion à {en.programme} ({en.channel})"))
    story.lines.sort(key=lambda x: x[0])
    return story
