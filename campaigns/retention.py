"""Retention (decree 2012-1249): people who did not enrol lose their identity 3 years after the
last offer; counts and outcomes stay for the statistics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from campaigns.models import SUCCESS_STATES, Action, Enrolment, Member, MemberEvent, Person

RETENTION_YEARS = 3
# An anonymised person keeps its row (members and actions point at it) with no identity left.
ANONYMOUS = "ANONYME"


@dataclass
class RetentionReport:
    """What a retention run found and (unless dry) did."""

    as_of: date
    cutoff: date
    dry_run: bool
    anonymised: int = 0
    kept_enrolled: int = 0
    kept_recent: int = 0
    already_anonymous: int = 0
    sample_member_ids: list[int] = field(default_factory=list)


def _cutoff(as_of: date, years: int) -> date:
    try:
        return as_of.replace(year=as_of.year - years)
    except ValueError:  # 29 February
        return as_of.replace(year=as_of.year - years, day=28)


def _pseudonym(person: Person) -> str:
    digest = hashlib.sha256(f"{person.ben_nir_psa}|{person.ben_rng_gem}".encode()).hexdigest()
    return f"anon-{digest[:24]}"


def apply_retention(
    *, session: Session, as_of: date, years: int = RETENTION_YEARS, dry_run: bool = True
) -> RetentionReport:
    """Anonymise people not enrolled whose last offer (or entry) is older than `years`."""
    cutoff = _cutoff(as_of, years)
    report = RetentionReport(as_of=as_of, cutoff=cutoff, dry_run=dry_run)
    last_offer = dict(
        session.exec(
            select(Action.person_id, func.max(Action.done_on))
            .where(col(Action.state).in_(SUCCESS_STATES))
            .group_by(col(Action.person_id))
        ).all()
    )
    last_entry = dict(
        session.exec(
            select(Member.person_id, func.max(Member.entered_on)).group_by(col(Member.person_id))
        ).all()
    )
    enrolled = {
        (a, b) for a, b in session.exec(select(Enrolment.ben_nir_psa, Enrolment.ben_rng_gem)).all()
    }
    for person in session.exec(select(Person).order_by(col(Person.id))).all():
        if person.nom == ANONYMOUS and not person.nir:
            report.already_anonymous += 1
            continue
        if (person.ben_nir_psa, person.ben_rng_gem) in enrolled:
            report.kept_enrolled += 1
            continue
        pid = person.id or 0
        dates = [d for d in (last_offer.get(pid), last_entry.get(pid)) if d]
        if not dates or max(dates) > cutoff:
            report.kept_recent += 1
            continue
        report.anonymised += 1
        if len(report.sample_member_ids) < 20:
            report.sample_member_ids.append(person.id or 0)
        if not dry_run:
            _anonymise(session, person, as_of)
    return report


def _anonymise(session: Session, person: Person, as_of: date) -> None:
    pseudonym = _pseudonym(person)
    for m in session.exec(select(Member).where(Member.person_id == person.id)).all():
        session.add(MemberEvent(member_id=m.id or 0, on=as_of, kind="anonymised", detail={}))
    session.execute(
        update(Action)
        .where(col(Action.person_id) == person.id)
        .values(outcome_notes=None, error=None)
    )
    person.ben_nir_psa, person.ben_rng_gem = pseudonym, 0
    person.nir, person.nom, person.prenom, person.civilite = "", ANONYMOUS, ANONYMOUS, ""
    person.address_lines = []
    person.telephone = person.email = None
    person.birth_month = None
    session.add(person)
