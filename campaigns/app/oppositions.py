"""Oppositions as use cases: one recorded from a person's page, or a whole file imported."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session

from campaigns.ledger.audit import record
from campaigns.ledger.models import Member, Person
from campaigns.policy.decision import record_opposition
from campaigns.policy.oppositions import parse_file, record_rows


@dataclass(frozen=True)
class Imported:
    """What an import read and recorded, or every error (then nothing is recorded)."""

    rows: int
    added: int
    errors: list[str] = field(default_factory=list)


def record_member_opposition(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    member_id: int,
    canal: str,
    today: date,
    now: datetime | None = None,
) -> bool:
    """A member opposes a channel from today; True if new or moved earlier (the policy's rule)."""
    m = session.get(Member, member_id)
    if m is None or m.campaign_id != campaign_id:
        raise LookupError("personne inconnue dans cette campagne")
    p = session.get(Person, m.person_id)
    assert p is not None
    changed = record_opposition(
        session,
        ben_nir_psa=p.ben_nir_psa,
        ben_rng_gem=p.ben_rng_gem,
        canal=canal,
        on=today,  # effective at once
        source=f"console by {actor}",
    )
    record(
        session=session,
        actor=actor,
        action="record_opposition",
        target=f"{campaign_id}/member/{member_id}",
        detail={"canal": canal},
        now=now,
    )
    return changed


def import_oppositions(
    *,
    session: Session,
    actor: str,
    path: Path,
    today: date,
    source: str | None = None,
    now: datetime | None = None,
) -> Imported:
    """Record every opposition of a CSV file, or none if any line is wrong (nothing audited)."""
    try:
        rows, errors = parse_file(path, today)
    except UnicodeDecodeError:
        rows, errors = [], ["pas du texte UTF-8 : enregistrez le fichier en CSV UTF-8"]
    except csv.Error as bad:
        rows, errors = [], [f"fichier CSV illisible ({bad})"]
    if errors:
        return Imported(rows=len(rows), added=0, errors=errors)
    added = record_rows(session=session, rows=rows, source=source or f"file {path.name}")
    record(
        session=session,
        actor=actor,
        action="import_oppositions",
        target="oppositions",
        detail={"file": path.name, "rows": len(rows), "added": added},
        now=now,
    )
    return Imported(rows=len(rows), added=added)
