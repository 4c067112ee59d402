"""Retention (decree 2012-1249): people who did not enrol lose their identity 3 years after the
last offer; counts and outcomes stay for the statistics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from campaigns.ledger.models import (
    SUCCESS_STATES,
    Action,
    Enrolment,
    Member,
    MemberEvent,
    MemberExplanation,
    Person,
)

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
    # For batched runs and the report (no personal data): the last person id looked at, the
    # people anonymised (or to be) per campaign, and the oldest last offer or entry among them.
    last_person_id: int = 0
    per_campaign: dict[str, int] = field(default_factory=dict)
    oldest_last_offer: date | None = None
    batches: int = 0

    def add(self, batch: RetentionReport) -> None:
        """Count one more batch of a run into this report."""
        self.batches += 1
        self.anonymised += batch.anonymised
        self.kept_enrolled += batch.kept_enrolled
        self.kept_recent += batch.kept_recent
        self.already_anonymous += batch.already_anonymous
        for cid, n in batch.per_campaign.items():
            self.per_campaign[cid] = self.per_campaign.get(cid, 0) + n
        if batch.oldest_last_offer and (
            self.oldest_last_offer is None or batch.oldest_last_offer < self.oldest_last_offer
        ):
            self.oldest_last_offer = batch.oldest_last_offer
        self.last_person_id = batch.last_person_id

    def as_dict(self) -> dict[str, Any]:
        """Plain values, no personal data: for Prefect results and the audit log."""
        return {
            "as_of": self.as_of.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "anonymised": self.anonymised,
            "kept_enrolled": self.kept_enrolled,
            "kept_recent": self.kept_recent,
            "already_anonymous": self.already_anonymous,
            "per_campaign": dict(sorted(self.per_campaign.items())),
            "oldest_last_offer": self.oldest_last_offer.isoformat()
            if self.oldest_last_offer
            else None,
            "batches": self.batches,
        }


def _cutoff(as_of: date, years: int) -> date:
    try:
        return as_of.replace(year=as_of.year - years)
    except ValueError:  # 29 February
        return as_of.replace(year=as_of.year - years, day=28)


def _pseudonym(person: Person) -> str:
    digest = hashlib.sha256(f"{person.ben_nir_psa}|{person.ben_rng_gem}".encode()).hexdigest()
    return f"anon-{digest[:24]}"


def apply_retention(
    *,
    session: Session,
    as_of: date,
    years: int = RETENTION_YEARS,
    dry_run: bool = True,
    after_id: int = 0,
    limit: int | None = None,
) -> RetentionReport:
    """Anonymise people not enrolled whose last offer (or entry) is older than `years`.

    `after_id` and `limit` take one batch of people, by id (the next batch starts after
    `report.last_person_id`); by default, everyone.
    """
    cutoff = _cutoff(as_of, years)
    report = RetentionReport(as_of=as_of, cutoff=cutoff, dry_run=dry_run)
    batch = list(
        session.exec(
            select(Person).where(col(Person.id) > after_id).order_by(col(Person.id)).limit(limit)
        ).all()
    )
    ids = [p.id for p in batch]
    last_offer = dict(
        session.exec(
            select(Action.person_id, func.max(Action.done_on))
            .where(col(Action.state).in_(SUCCESS_STATES), col(Action.person_id).in_(ids))
            .group_by(col(Action.person_id))
        ).all()
    )
    last_entry: dict[int, date] = {}
    campaigns: dict[int, set[str]] = {}
    for pid, cid, entered in session.exec(
        select(col(Member.person_id), col(Member.campaign_id), col(Member.entered_on)).where(
            col(Member.person_id).in_(ids)
        )
    ).all():
        campaigns.setdefault(pid, set()).add(cid)
        if entered and (pid not in last_entry or entered > last_entry[pid]):
            last_entry[pid] = entered
    enrolled = {
        (a, b) for a, b in session.exec(select(Enrolment.ben_nir_psa, Enrolment.ben_rng_gem)).all()
    }
    for person in batch:
        report.last_person_id = person.id or 0
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
        for cid in campaigns.get(pid, set()):
            report.per_campaign[cid] = report.per_campaign.get(cid, 0) + 1
        last = max(dates)
        if report.oldest_last_offer is None or last < report.oldest_last_offer:
            report.oldest_last_offer = last
        if len(report.sample_member_ids) < 20:
            report.sample_member_ids.append(person.id or 0)
        if not dry_run:
            _anonymise(session, person, as_of)
    return report


def _anonymise(session: Session, person: Person, as_of: date) -> None:
    pseudonym = _pseudonym(person)
    for m in session.exec(select(Member).where(Member.person_id == person.id)).all():
        session.add(MemberEvent(member_id=m.id or 0, on=as_of, kind="anonymised", detail={}))
        # The stored explanation names the person's key and care rows: it goes too.
        session.execute(delete(MemberExplanation).where(col(MemberExplanation.member_id) == m.id))
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
