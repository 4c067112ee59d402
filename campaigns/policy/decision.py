"""The one contact policy: may this person be contacted on this channel now, and why not.

`decide` is pure (small inline tables test it); `load_facts` reads what it needs for a whole
batch of people in a few queries (oppositions effective on the day, death, enrolment, contact
details, contacts across every campaign in the pressure windows). Every contact point calls
both: the tick (deferrals for pressure), the call claim and the dial (calls), dispatch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from campaigns.clock import paris_today
from campaigns.definition.model import REACHED_OUTCOMES, ContactHours
from campaigns.definition.reasons import MISSING_DETAIL, Reason, explain, opposed_to
from campaigns.definition.vocabulary import ALL_CHANNELS, Channel
from campaigns.definition.vocabulary import OPPOSITION_CANALS as OPPOSITION_CANALS
from campaigns.ledger.db import among, among_pairs
from campaigns.ledger.models import SUCCESS_STATES, Action, Enrolment, Opposition, Person
from campaigns.policy.calendar import within_contact_hours
from campaigns.settings import Settings
from targeting.identifiers import key_problem

# Reasons that only say "not now": the contact is deferred, never cancelled for them.
TEMPORARY = frozenset(
    {
        Reason.PRESSURE_CALLS,
        Reason.PRESSURE_CONTACTS,
        Reason.OUTSIDE_CONTACT_HOURS,
        Reason.OUTSIDE_CONTACT_DAYS,
        Reason.PUBLIC_HOLIDAY,
    }
)

# Channels whose actions count as contacts once sent (a call counts when it reached the
# person; an e-mail notice counts with its mailbox message, not separately).
_SENT_CONTACT_CHANNELS = (Channel.MAILBOX, Channel.LETTER)
NOTICE_SUFFIX = "_notice"


@dataclass(frozen=True)
class Pressure:
    """Limits on contacts across every campaign (from settings)."""

    max_calls: int = 1
    calls_days: int = 14
    max_contacts: int = 3
    contacts_days: int = 30


def pressure_from(settings: Settings) -> Pressure:
    """The cross-campaign contact limits the settings give."""
    return Pressure(
        max_calls=settings.pressure_max_calls,
        calls_days=settings.pressure_calls_days,
        max_contacts=settings.pressure_max_contacts,
        contacts_days=settings.pressure_contacts_days,
    )


@dataclass(frozen=True)
class PastContact:
    """A contact already made (any campaign): a call that reached, a message, a letter."""

    on: date
    channel: str
    campaign_id: str
    step: str = ""


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about a person, read from the ledger."""

    departement: str
    deceased: bool = False
    enrolled: bool = False
    opposed: frozenset[str] = frozenset()
    phone_ok: bool = True
    email_ok: bool = True
    address_ok: bool = True
    compte_ameli: bool = True
    attempts_made: int = 0
    past: Sequence[PastContact] = ()


@dataclass(frozen=True)
class Decision:
    """The answer, with every reason that forbids the contact (empty when allowed).

    `until`: when only pressure blocks it, the first day the pressure windows free up.
    """

    allowed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    until: date | None = None

    @property
    def reason(self) -> str | None:
        """The first reason, in precedence order (what the ledger records)."""
        return self.reasons[0] if self.reasons else None

    @property
    def temporary(self) -> bool:
        """Blocked only for now (pressure, hours, holidays): defer, do not cancel."""
        return not self.allowed and all(r in TEMPORARY for r in self.reasons)

    @property
    def explanation(self) -> str:
        if self.allowed:
            return "contact autorisé"
        return "; ".join(explain(r) for r in self.reasons)


def _window(
    past: Iterable[PastContact], today: date, days: int, limit: int, channel: str | None
) -> date | None:
    """None if fewer than `limit` contacts in the window, else the day it frees up."""
    since = today - timedelta(days=days)
    inside = sorted(
        (p.on for p in past if since < p.on <= today and (channel is None or p.channel == channel)),
        reverse=True,
    )
    if len(inside) < max(limit, 1) and limit > 0:
        return None
    if limit <= 0:
        return today + timedelta(days=days)  # nothing is ever allowed: a day per window
    # The limit-th most recent contact leaves the window `days` days after it was made.
    return inside[limit - 1] + timedelta(days=days)


def _standing_reasons(facts: Facts, channel: str) -> list[str]:
    """What blocks the contact whatever the day: death, enrolment, oppositions, details."""
    reasons: list[str] = []
    if facts.deceased:
        reasons.append(Reason.DECEASED)
    if facts.enrolled:
        reasons.append(Reason.ENROLLED)
    if ALL_CHANNELS in facts.opposed:
        reasons.append(Reason.OPPOSED_ALL)
    elif channel in facts.opposed:
        reasons.append(opposed_to(channel))
    has = {
        Channel.PHONE: facts.phone_ok,
        Channel.EMAIL: facts.email_ok,
        Channel.LETTER: facts.address_ok,
        Channel.MAILBOX: facts.compte_ameli,
    }
    if channel in has and not has[Channel(channel)]:
        reasons.append(MISSING_DETAIL[Channel(channel)])
    return reasons


def _pressure_reasons(
    facts: Facts,
    channel: str,
    today: date,
    pressure: Pressure,
    campaign: str | None,
    step: str | None,
) -> tuple[list[str], date | None]:
    """The pressure limits the contact would exceed, and the day it would be free again."""
    reasons: list[str] = []
    until: date | None = None
    past = [
        p
        for p in facts.past
        if not (campaign is not None and p.campaign_id == campaign and p.step == step)
    ]
    if channel == "phone":
        free = _window(past, today, pressure.calls_days, pressure.max_calls, "phone")
        if free is not None:
            reasons.append("pressure_calls")
            until = free
    free = _window(past, today, pressure.contacts_days, pressure.max_contacts, None)
    if free is not None:
        reasons.append("pressure_contacts")
        until = max(until, free) if until else free
    return reasons, until


def decide(
    *,
    facts: Facts,
    channel: str,
    now: datetime,
    campaign: str | None = None,
    step: str | None = None,
    pressure: Pressure | None = Pressure(),
    hours: ContactHours | None = None,
    max_attempts: int | None = None,
) -> Decision:
    """Check every rule for one contact; the reasons list all that block it, in precedence.

    Precedence: deceased > enrolled > opposition to all > opposition to the channel > missing
    contact details > pressure > contact hours and holidays (calls only) > attempt cap.
    Pressure counts contacts of every campaign except this step's own earlier attempts
    (`campaign`, `step`): its retries and callbacks are governed by the attempt cap.
    `pressure=None` or `hours=None` leaves that rule out.
    """
    today = paris_today(now)
    reasons = _standing_reasons(facts, channel)
    until: date | None = None
    if pressure is not None:
        over, until = _pressure_reasons(facts, channel, today, pressure, campaign, step)
        reasons += over
    if channel == Channel.PHONE and hours is not None:
        why = within_contact_hours(
            now,
            facts.departement,
            days=hours.days,
            start=hours.start,
            end=hours.end,
            public_holidays=hours.public_holidays,
        )
        if why:
            reasons.append(why)
    if max_attempts is not None and facts.attempts_made >= max_attempts:
        reasons.append(Reason.ATTEMPTS_EXHAUSTED)
    return Decision(allowed=not reasons, reasons=tuple(reasons), until=until)


class FactsPerson(Protocol):
    """What `load_facts` reads of a person: a `Person` row or a plain tuple of its columns."""

    @property
    def id(self) -> int | None: ...
    @property
    def ben_nir_psa(self) -> str: ...
    @property
    def ben_rng_gem(self) -> int: ...
    @property
    def departement(self) -> str: ...
    @property
    def deceased_on(self) -> date | None: ...
    @property
    def phone_invalid(self) -> bool: ...
    @property
    def email_invalid(self) -> bool: ...
    @property
    def address_lines(self) -> list[str]: ...
    @property
    def address_invalid(self) -> bool: ...
    @property
    def compte_ameli(self) -> bool: ...


def person_key(p: FactsPerson) -> tuple[str, int]:
    """The SNDS key of a person."""
    return (p.ben_nir_psa, p.ben_rng_gem)


Key = tuple[str, int]


def _oppositions(session: Session, keys: list[Key], today: date) -> dict[Key, set[str]]:
    """The channels each person opposes on `today` ("all" included)."""
    opposed: dict[Key, set[str]] = defaultdict(set)
    for a, b, canal in session.exec(
        select(Opposition.ben_nir_psa, Opposition.ben_rng_gem, Opposition.canal).where(
            among_pairs(session, Opposition.ben_nir_psa, Opposition.ben_rng_gem, keys),
            col(Opposition.opposed_on) <= today,
        )
    ):
        opposed[(a, b)].add(canal)
    return opposed


def _enrolled(
    session: Session, keys: list[Key], today: date, goal: ColumnElement[bool] | None
) -> set[Key]:
    """Who reached the goal on or before `today` (rows matching `goal`, or any row)."""
    stmt = select(Enrolment.ben_nir_psa, Enrolment.ben_rng_gem).where(
        among_pairs(session, Enrolment.ben_nir_psa, Enrolment.ben_rng_gem, keys),
        col(Enrolment.enrolled_on) <= today,
    )
    if goal is not None:
        stmt = stmt.where(goal)
    return {(a, b) for a, b in session.exec(stmt)}


def _past_contacts(
    session: Session, ids: list[int], today: date, pressure: Pressure
) -> dict[int, list[PastContact]]:
    """Contacts of every campaign within the longest pressure window, by person id."""
    past: dict[int, list[PastContact]] = defaultdict(list)
    since = today - timedelta(days=max(pressure.calls_days, pressure.contacts_days))
    for pid, on, channel, cid, step in session.exec(
        select(  # type: ignore[call-overload]  # five columns: past sqlmodel overloads
            Action.person_id, Action.done_on, Action.channel, Action.campaign_id, Action.step
        ).where(
            col(Action.person_id).in_(ids),
            col(Action.done_on) > since,
            col(Action.state).in_(SUCCESS_STATES),
            or_(
                and_(
                    col(Action.channel) == "phone",
                    col(Action.outcome).in_(sorted(REACHED_OUTCOMES)),
                ),
                col(Action.channel).in_(_SENT_CONTACT_CHANNELS),
                and_(
                    col(Action.channel) == "email",
                    col(Action.step).not_like(f"%{NOTICE_SUFFIX}"),
                ),
            ),
        )
    ):
        if on is not None:
            past[pid].append(PastContact(on=on, channel=channel, campaign_id=cid, step=step))
    return past


def _reachable(session: Session, ids: list[int]) -> dict[int, tuple[bool, bool]]:
    """Who has a phone or an e-mail, asked of the database: no number or address is decrypted."""
    return {
        pid or 0: (tel, mail)
        for pid, tel, mail in session.exec(
            select(
                Person.id, col(Person.telephone).is_not(None), col(Person.email).is_not(None)
            ).where(among(session, Person.id, ids))
        )
    }


def load_facts(
    session: Session,
    people: Sequence[FactsPerson],
    *,
    today: date,
    pressure: Pressure | None = Pressure(),
    enrolments: bool = True,
    goal: ColumnElement[bool] | None = None,
    reachable: dict[int, tuple[bool, bool]] | None = None,
) -> dict[int, Facts]:
    """The facts of a batch of people, keyed by person id, in at most four queries.

    Oppositions effective on `today` (all or per channel); goal rows on or before `today`
    (those matching `goal`, e.g. `ledger.goals.goal_reached`, or any row when None; none read
    if `enrolments` is False);
    contacts of every campaign within the longest pressure window (none when `pressure` is
    None): calls that reached the person, mailbox messages and letters sent, e-mails sent
    that are not the notice of a mailbox message. `reachable`: whether each person (by id)
    has a phone and an e-mail on file, when the caller has just read it (else asked here, the
    fourth query).
    """
    people = [p for p in people if p.id is not None]
    if not people:
        return {}
    keys = list({person_key(p) for p in people})
    ids = [p.id or 0 for p in people]
    opposed = _oppositions(session, keys, today)
    enrolled = _enrolled(session, keys, today, goal) if enrolments else set()
    past = _past_contacts(session, ids, today, pressure) if pressure is not None else {}
    if reachable is None:
        reachable = _reachable(session, ids)
    out: dict[int, Facts] = {}
    for p in people:
        key = person_key(p)
        has_phone, has_email = reachable.get(p.id or 0, (False, False))
        out[p.id or 0] = Facts(
            departement=p.departement,
            deceased=p.deceased_on is not None,
            enrolled=key in enrolled,
            opposed=frozenset(opposed.get(key, ())),
            phone_ok=has_phone and not p.phone_invalid,
            email_ok=has_email and not p.email_invalid,
            address_ok=bool(p.address_lines) and not p.address_invalid,
            compte_ameli=p.compte_ameli,
            past=tuple(past.get(p.id or 0, ())),
        )
    return out


def record_opposition(
    session: Session,
    *,
    ben_nir_psa: str,
    ben_rng_gem: int,
    canal: str,
    on: date,
    source: str,
) -> bool:
    """Record an opposition, effective from `on` (today: at once, at every contact point).

    False when the person already opposes that channel from that day or earlier; an earlier
    date moves the existing opposition forward.
    """
    if canal not in OPPOSITION_CANALS:
        raise ValueError(f"unknown channel {canal!r} (one of {', '.join(OPPOSITION_CANALS)})")
    for column, value in (("ben_nir_psa", ben_nir_psa), ("ben_rng_gem", ben_rng_gem)):
        if (why := key_problem(column, value)) is not None:
            raise ValueError(f"colonne {column} : {why}")  # never the value: it may be a NIR
    exists = session.exec(
        select(Opposition).where(
            Opposition.ben_nir_psa == ben_nir_psa,
            Opposition.ben_rng_gem == ben_rng_gem,
            Opposition.canal == canal,
        )
    ).first()
    if exists is not None:
        if exists.opposed_on <= on:
            return False
        exists.opposed_on, exists.source = on, source
        return True
    session.add(
        Opposition(
            ben_nir_psa=ben_nir_psa,
            ben_rng_gem=ben_rng_gem,
            canal=canal,
            opposed_on=on,
            source=source,
        )
    )
    session.flush()
    return True
