"""The call list: advisers claim the next person to call and record what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from campaigns.clock import paris_today
from campaigns.definition.model import REACHED_OUTCOMES, CampaignDefinition, Outcome
from campaigns.definition.reasons import Reason, explain
from campaigns.definition.vocabulary import Channel
from campaigns.definition.windows import step_window
from campaigns.ledger.members import close_member
from campaigns.ledger.models import (
    CANCELLED,
    DONE,
    EXITED,
    GOAL,
    QUEUED,
    Action,
    Member,
    MemberEvent,
    Person,
)
from campaigns.ledger.registry import halted_campaigns
from campaigns.policy.calendar import within_contact_hours
from campaigns.policy.decision import Decision, decide, load_facts, pressure_from, record_opposition
from campaigns.settings import get_settings

LEASE = timedelta(minutes=5)
# A member event: an adviser gave the call back ("Passer"); not offered to them again that day.
SKIPPED_CALL = "call_skipped"


class CallError(Exception):
    """A call-list operation that cannot be done; the message says why."""


class NotYourCall(CallError):
    """The call is not held by this adviser (the web console answers 403)."""


@dataclass(frozen=True)
class Claim:
    """A call an adviser holds until the lease ends."""

    action_id: int
    member_id: int
    person_id: int
    campaign_id: str
    lease_until: datetime


def _callable_filter(today: date, now: datetime) -> list[Any]:
    return [
        Action.channel == Channel.PHONE,
        Action.state == QUEUED,
        col(Action.due_on) <= today,
        or_(col(Action.due_at).is_(None), col(Action.due_at) <= now),
        or_(col(Action.claimed_by).is_(None), col(Action.lease_until) < now),
    ]


def _skipped_by(adviser: str, today: date) -> Any:
    """The adviser gave back a call of this member today ("Passer"): not offered to them again."""
    return exists().where(
        col(MemberEvent.member_id) == col(Action.member_id),  # indexed: one probe per candidate
        col(MemberEvent.kind) == SKIPPED_CALL,
        col(MemberEvent.on) == today,
        MemberEvent.detail["adviser"].as_string() == adviser,
    )


def _window_reason(
    definition: CampaignDefinition, action: Action, today: date
) -> tuple[bool, str | None]:
    """Whether the call may be offered today within its step's window; when not, the reason to
    cancel it (the window has passed) or None (not open yet: it stays queued)."""
    if action.anchor_date is None:  # a row from before anchors were copied onto actions
        return True, None
    start, end = step_window(definition, definition.step(action.step), action.anchor_date)
    if today > end:
        return False, Reason.WINDOW_PASSED
    return start <= today, None


def _policy_now(
    session: Session,
    action: Action,
    now: datetime,
    definition: CampaignDefinition | None = None,
    person: Person | None = None,
) -> Decision:
    """The contact policy for this call now: with the campaign's contact hours and the
    cross-campaign pressure when the definition is given (the claim), else the facts only.
    `person`: the call's person when the caller has just read it."""
    person = person or session.get(Person, action.person_id)
    if person is None:
        return Decision(allowed=False, reasons=(Reason.DECEASED,))
    today = paris_today(now)
    pressure = pressure_from(get_settings()) if definition is not None else None
    facts = load_facts(session, [person], today=today, pressure=pressure, enrolments=False)
    return decide(
        facts=facts[person.id or 0],
        channel=Channel.PHONE,
        now=now,
        campaign=action.campaign_id,
        step=action.step,
        pressure=pressure,
        hours=definition.contact_hours if definition is not None else None,
    )


def _blocked_now(session: Session, action: Action, now: datetime) -> str | None:
    """Why this call must not be made now (the policy's first reason), or None."""
    return _policy_now(session, action, now).reason


def held_claim(
    *, session: Session, adviser: str, now: datetime, halted: set[str] | None = None
) -> Action | None:
    """The call the adviser still holds, if any (an outcome is owed before the next one);
    never one of a campaign paused or ended meanwhile (its pause gives such calls back).
    `halted`: those campaigns when the caller has just read them."""
    if halted is None:
        halted = halted_campaigns(session=session)
    return session.exec(
        select(Action).where(
            Action.claimed_by == adviser,
            Action.state == QUEUED,
            col(Action.lease_until) >= now,
            col(Action.campaign_id).not_in(halted),
        )
    ).first()


def _candidate(*, adviser: str, today: date, now: datetime, running: list[str], lock: bool) -> Any:
    """The most urgent callable call with its person, one row (both locked, skipping rows
    where either is locked, when `lock`).

    One candidate at a time: locking a page of rows per claim would make every claim write
    that many row locks, and hide them from the other advisers until it commits. The person
    is locked with the call: a claim on the person's other call made at the same moment
    (which a snapshot would not see) holds it, so this candidate is passed over.
    """
    # Callbacks (a due time) first: `due_at IS NULL` is false for them. Matches
    # ix_action_call_queue, so the database walks the queue in order and stops early.
    callback_first = col(Action.due_at).is_(None)
    stmt = (
        select(Action, Person)
        .join(Person, col(Person.id) == col(Action.person_id))
        .where(
            *_callable_filter(today, now),
            col(Action.campaign_id).in_(running),
            ~_skipped_by(adviser, today),
        )
        .order_by(
            callback_first, col(Action.priority).desc(), col(Action.anchor_date), col(Action.id)
        )
        .limit(1)
    )
    return stmt.with_for_update(skip_locked=True, of=[Action, Person]) if lock else stmt


# Built once: aliasing the table for each claim cost ~0.7 ms of SQLAlchemy's time.
_OTHER_CALL = aliased(Action, name="other_call")


def claim_next(
    *,
    session: Session,
    adviser: str,
    now: datetime,
    definitions: dict[str, CampaignDefinition],
    scan: int = 20,
    halted: set[str] | None = None,
) -> Claim | None:
    """Claim the most urgent callable person across campaigns, or None if nobody is callable.

    Order: callbacks due now, then priority (all care gaps), then nearest anchor date.
    The claim itself is one compare-and-set UPDATE (still queued, not held by anyone, no live
    claim on another call of the person), so two advisers never get the same call or person:
    on SQLite the statement runs under the write lock; on PostgreSQL the candidate row and
    its person are locked with SKIP LOCKED first, because a snapshot would not see a claim
    on the person's other call made at the same moment. `halted`: the campaigns paused or
    ended, when the caller has just read them (read here otherwise).
    """
    if halted is None:
        halted = halted_campaigns(session=session)
    held = held_claim(session=session, adviser=adviser, now=now, halted=halted)
    if held is not None:
        return Claim(
            held.id or 0, held.member_id, held.person_id, held.campaign_id, held.lease_until or now
        )
    today = paris_today(now)
    # A campaign past its end offers no call, even before the tick cancels what it queued.
    # Nor does one its manager paused or ended (its calls stay queued, held for a resume).
    running = [
        cid
        for cid, d in definitions.items()
        if (d.dates.end is None or today <= d.dates.end) and cid not in halted
    ]
    postgres = session.get_bind().dialect.name == "postgresql"
    candidate = _candidate(adviser=adviser, today=today, now=now, running=running, lock=postgres)
    passed_over: list[int] = []
    for _ in range(scan):
        stmt = candidate.where(col(Action.id).not_in(passed_over)) if passed_over else candidate
        row = session.exec(stmt).first()
        if row is None:
            break
        action, person = row
        passed_over.append(action.id or 0)
        # Never a call outside its step's window: the script would read a date already past.
        in_window, passed = _window_reason(definitions[action.campaign_id], action, today)
        if not in_window:
            if passed:
                _set_if(
                    session,
                    action,
                    Action.state == QUEUED,
                    state=CANCELLED,
                    reason=passed,
                    updated_at=now,
                    claimed_by=None,
                    lease_until=None,
                )
            continue
        # One policy call: oppositions and death newer than the tick (cancel the call),
        # contact hours, public holidays and cross-campaign pressure (leave it queued).
        decision = _policy_now(session, action, now, definitions[action.campaign_id], person)
        if not decision.allowed:
            if not decision.temporary:
                _set_if(
                    session,
                    action,
                    Action.state == QUEUED,
                    state=CANCELLED,
                    reason=decision.reason,
                    updated_at=now,
                )
            continue
        # Kept before the compare-and-set expires the row: no second read to answer.
        claim = Claim(
            action.id or 0,
            action.member_id,
            action.person_id,
            action.campaign_id,
            now + LEASE,
        )
        other = _OTHER_CALL
        person_busy = exists().where(
            col(other.person_id) == action.person_id,
            col(other.id) != action.id,
            col(other.state) == QUEUED,
            col(other.claimed_by).is_not(None),
            col(other.lease_until) >= now,
        )
        if not _set_if(
            session,
            action,
            *_callable_filter(today, now),
            ~person_busy,
            claimed_by=adviser,
            lease_until=now + LEASE,
            updated_at=now,
        ):
            continue
        return claim
    return None


def _set_if(session: Session, action: Action, *where: Any, **values: Any) -> bool:
    """Compare-and-set: write `values` on the action only if it still matches `where`."""
    stmt = (
        update(Action)
        .where(col(Action.id) == action.id, *where)
        .values(**values)
        .returning(col(Action.id))
        .execution_options(synchronize_session=False)
    )
    done = session.execute(stmt).first() is not None
    # The row may have moved under us either way: read it again when next used.
    session.expire(action)
    return done


def _mine(action_id: int, adviser: str) -> ColumnElement[bool]:
    return and_(
        col(Action.id) == action_id, col(Action.claimed_by) == adviser, col(Action.state) == QUEUED
    )


def renew_lease(*, session: Session, action_id: int, adviser: str, now: datetime) -> datetime:
    """Keep a claim while the adviser's page is open."""
    until = now + LEASE
    renewed = session.execute(
        update(Action)
        .where(_mine(action_id, adviser))
        .values(lease_until=until)
        .returning(col(Action.id))
        .execution_options(synchronize_session="fetch")
    ).first()
    if renewed is None:
        raise CallError("this call is not yours any more")
    return until


def release(*, session: Session, action_id: int, adviser: str) -> bool:
    """Give a claimed call back to the list (skip, logout); whether it was held."""
    released = session.execute(
        update(Action)
        .where(_mine(action_id, adviser))
        .values(claimed_by=None, lease_until=None)
        .returning(col(Action.id), col(Action.member_id))
        .execution_options(synchronize_session="fetch")
    ).first()
    return released is not None


def skip(*, session: Session, action_id: int, adviser: str, now: datetime) -> bool:
    """ "Passer": give the call back and note it, so that the same adviser is not offered this
    person again today (another adviser may be); whether the call was held."""
    a = session.get(Action, action_id)
    if a is None or not release(session=session, action_id=action_id, adviser=adviser):
        return False
    session.add(
        MemberEvent(
            member_id=a.member_id,
            on=paris_today(now),
            kind=SKIPPED_CALL,
            detail={"adviser": adviser, "action": action_id, "attempt": a.attempt},
        )
    )
    session.flush()
    return True


def _check_callback(
    definition: CampaignDefinition, person: Person, callback_at: datetime | None, now: datetime
) -> None:
    """A callback is for a future time within the campaign's contact hours."""
    if callback_at is None:
        raise CallError("un rappel demande une date et une heure")
    h = definition.contact_hours
    why_not = within_contact_hours(
        callback_at,
        person.departement,
        days=h.days,
        start=h.start,
        end=h.end,
        public_holidays=h.public_holidays,
    )
    if why_not:
        raise CallError(f"heure de rappel non autorisée : {explain(why_not)} ({why_not})")
    if callback_at <= now:
        raise CallError("un rappel se fixe dans le futur")


def _already_done(a: Action, adviser: str, outcome: str) -> Action:
    """The same form posted twice gets its call back; anything else is refused."""
    if a.state != DONE:
        raise CallError("cet appel ne vous est pas attribué")
    if a.outcome == outcome and a.claimed_by == adviser:
        return a
    raise CallError("un résultat est déjà enregistré pour cet appel")


def _apply_effects(
    session: Session,
    *,
    a: Action,
    rule: Outcome,
    person: Person,
    member: Member,
    adviser: str,
    outcome: str,
    today: date,
    now: datetime,
) -> None:
    """What an outcome changes: the member's event, oppositions, contact details, the exit."""
    session.add(
        MemberEvent(
            member_id=member.id or 0,
            on=today,
            kind="call_outcome",
            detail={
                "attempt": a.attempt,
                "outcome": outcome,
                "adviser": adviser,
                "reached": outcome in REACHED_OUTCOMES,
            },
        )
    )
    if rule.opposition:
        # The policy's rule: an opposition already on record from a later day is moved to
        # today; one from today or earlier is kept as it is.
        record_opposition(
            session,
            ben_nir_psa=person.ben_nir_psa,
            ben_rng_gem=person.ben_rng_gem,
            canal=rule.opposition,
            on=today,
            source=f"call outcome by {adviser}",
        )
    if rule.invalidate == "phone":
        person.phone_invalid = True
    if outcome == "deceased":
        person.deceased_on = today
    if rule.effect in ("goal", "exit"):
        close_member(
            session=session,
            member=member,
            status=GOAL if rule.effect == "goal" else EXITED,
            reason=f"outcome_{outcome}",
            today=today,
            source="call",
            now=now,
        )


def record_outcome(
    *,
    session: Session,
    action_id: int,
    adviser: str,
    outcome: str,
    now: datetime,
    definition: CampaignDefinition,
    notes: str | None = None,
    callback_at: datetime | None = None,
) -> Action:
    """Record the adviser's outcome for a claimed call and apply its immediate effects."""
    a = session.get(Action, action_id)
    if a is None:
        raise CallError(f"aucun appel n° {action_id}")
    if a.state == DONE:
        return _already_done(a, adviser, outcome)
    if a.claimed_by != adviser:
        raise NotYourCall("cet appel ne vous est pas attribué")
    rule = definition.step(a.step).outcomes.get(outcome)  # type: ignore[call-overload]
    if rule is None:
        raise CallError("résultat d'appel inconnu")
    person = session.get(Person, a.person_id)
    member = session.get(Member, a.member_id)
    assert person is not None and member is not None
    if rule.effect == "callback":
        _check_callback(definition, person, callback_at, now)
    today = paris_today(now)
    # Compare-and-set: of two posts racing (a double click, two tabs), one records the outcome
    # and its effects; the other finds the call done and answers as above.
    if not _set_if(
        session,
        a,
        _mine(action_id, adviser),
        state=DONE,
        outcome=outcome,
        outcome_notes=notes,
        done_on=today,
        updated_at=now,
        callback_at=callback_at,
        lease_until=None,
    ):
        return _already_done(a, adviser, outcome)
    _apply_effects(
        session,
        a=a,
        rule=rule,
        person=person,
        member=member,
        adviser=adviser,
        outcome=outcome,
        today=today,
        now=now,
    )
    session.flush()
    return a


def release_campaign(*, session: Session, campaign_id: str) -> int:
    """Give back every call of the campaign advisers hold (its pause): queued, held for the
    resume, offered to nobody meanwhile; how many were held."""
    released = session.execute(
        update(Action)
        .where(
            col(Action.campaign_id) == campaign_id,
            col(Action.state) == QUEUED,
            col(Action.claimed_by).is_not(None),
        )
        .values(claimed_by=None, lease_until=None)
        .returning(col(Action.id))
        .execution_options(synchronize_session="fetch")
    ).all()
    return len(released)


def release_all(*, session: Session, adviser: str) -> int:
    """Give back every call an adviser holds (logout)."""
    released = session.execute(
        update(Action)
        .where(col(Action.claimed_by) == adviser, col(Action.state) == QUEUED)
        .values(claimed_by=None, lease_until=None)
        .returning(col(Action.id))
        .execution_options(synchronize_session="fetch")
    ).all()
    return len(released)
