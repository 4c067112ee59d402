"""The programme's enrolment feed: ingest it idempotently, stop the cascade of who enrolled."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from campaigns.clock import paris_today, utcnow
from campaigns.definition.reasons import Reason
from campaigns.ledger.members import close_member
from campaigns.ledger.models import ACTIVE, GOAL, Enrolment, Member, Person
from targeting.identifiers import key_problem
from targeting.schema import PERSON_KEY

FEED_COLUMNS = ("ben_nir_psa", "ben_rng_gem", "date_adhesion", "canal")
ENROLMENT_CHANNELS = ("online", "paper", "doctor", "phone")


@dataclass
class FeedReport:
    """What an ingestion did, with each rejected line and why (never a cell's value)."""

    file: str
    rows: int = 0
    new: int = 0
    already_known: int = 0
    members_closed: int = 0
    errors: list[str] = field(default_factory=list)


def _parse(path: Path, report: FeedReport) -> list[dict[str, Any]]:
    """The good rows; each bad line is named in `report.errors` by line and column, never value."""
    rows: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in FEED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            report.errors.append(f"{path.name}, ligne 1 : colonnes manquantes {', '.join(missing)}")
            return rows
        for raw in reader:
            line_no = reader.reader.line_num  # the file's line, even after a quoted line break
            report.rows += 1
            bad = [(c, why) for c in PERSON_KEY if (why := key_problem(c, raw[c])) is not None]
            try:
                on = date.fromisoformat((raw["date_adhesion"] or "").strip())
            except ValueError:
                bad.append(("date_adhesion", "n'est pas une date (AAAA-MM-JJ)"))
            canal = (raw["canal"] or "").strip()
            if canal not in ENROLMENT_CHANNELS:
                bad.append(("canal", f"n'est pas l'un de {', '.join(ENROLMENT_CHANNELS)}"))
            if bad:
                report.errors += [
                    f"{path.name}, ligne {line_no}, colonne {c} : {why}" for c, why in bad
                ]
                continue
            rows.append(
                {
                    "ben_nir_psa": raw["ben_nir_psa"].strip(),
                    "ben_rng_gem": int(raw["ben_rng_gem"]),
                    "enrolled_on": on,
                    "channel": canal,
                }
            )
    return rows


def ingest_enrolment_file(
    *,
    session: Session,
    path: Path,
    programme: str,
    campaign_ids: list[str],
    now: datetime | None = None,
) -> FeedReport:
    """Ingest one feed file; a bad line is reported and skipped, the rest goes in."""
    now = now or utcnow()
    report = FeedReport(file=path.name)
    rows = _parse(path, report)
    if not rows:
        return report
    values = [{**r, "programme": programme, "source": path.name} for r in rows]
    dialect = session.get_bind().dialect.name
    ins: Any = postgresql.insert(Enrolment) if dialect == "postgresql" else sqlite.insert(Enrolment)
    inserted = 0
    for i in range(0, len(values), 1000):
        stmt = (
            ins.values(values[i : i + 1000])
            .on_conflict_do_nothing(index_elements=["ben_nir_psa", "ben_rng_gem", "programme"])
            .returning(Enrolment.id)
        )
        inserted += len(session.execute(stmt).all())
    report.new = inserted
    report.already_known = len(values) - inserted
    keys = [(r["ben_nir_psa"], r["ben_rng_gem"]) for r in rows]
    report.members_closed = close_enrolled_members(
        session=session, programme=programme, campaign_ids=campaign_ids, keys=keys, now=now
    )
    return report


def close_enrolled_members(
    *,
    session: Session,
    programme: str,
    campaign_ids: list[str],
    keys: list[tuple[str, int]],
    now: datetime,
) -> int:
    """Stop the cascade, the same day, of active members who enrolled."""
    closed = 0
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        rows = session.exec(
            select(Member, col(Enrolment.enrolled_on))
            .join(Person, col(Person.id) == col(Member.person_id))
            .join(
                Enrolment,
                (col(Enrolment.ben_nir_psa) == col(Person.ben_nir_psa))
                & (col(Enrolment.ben_rng_gem) == col(Person.ben_rng_gem)),
            )
            .where(
                Member.status == ACTIVE,
                Enrolment.programme == programme,
                col(Member.campaign_id).in_(campaign_ids),
                tuple_(col(Person.ben_nir_psa), col(Person.ben_rng_gem)).in_(chunk),
            )
        ).all()
        for member, _enrolled_on in rows:
            closed += close_member(
                session=session,
                member=member,
                status=GOAL,
                reason=Reason.ENROLLED,
                today=paris_today(now),
                source="enrolment_feed",
                now=now,
            )
    return closed
