"""Objectives as use cases: one échelon's objective set by hand, or a file of them imported."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.audit import record
from campaigns.measurement.dashboard import parse_objectives_csv, set_objectives


def decode_csv(data: bytes) -> str:
    """An uploaded CSV's text: UTF-8 (with or without Excel's BOM), else Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # French Excel's "CSV (point-virgule)"


def set_objective(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    echelon: str,
    objective: int,
    note: str | None = None,
    now: datetime | None = None,
) -> None:
    """Give one échelon a new objective (the old one stays in the history)."""
    set_objectives(
        session=session,
        campaign_id=campaign_id,
        targets={echelon: objective},
        by=actor,
        note=note,
        now=now,
    )
    record(
        session=session,
        actor=actor,
        action="set_objective",
        target=f"{campaign_id}/{echelon}",
        detail={"objective": objective},
        now=now,
    )


def import_objectives(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    text: str,
    filename: str | None,
    now: datetime | None = None,
) -> int:
    """Set the objectives of an `echelon,objective` file, all or none; how many were set."""
    known = set(campaign_by_id(campaign_id).definition.objectives.names())
    targets = parse_objectives_csv(text, known)
    set_objectives(
        session=session,
        campaign_id=campaign_id,
        targets=targets,
        by=actor,
        note=f"import {filename}",
        now=now,
    )
    record(
        session=session,
        actor=actor,
        action="import_objectives",
        target=campaign_id,
        detail={"file": filename, "rows": len(targets)},
        now=now,
    )
    return len(targets)
