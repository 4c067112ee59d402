"""A campaign's goal rows: its enrolment feed ingested idempotently, and the cascade of whoever
reached the goal stopped (the rows observed in the extract come through here too)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import column, table
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col, select

from campaigns.clock import paris_today, utcnow
from campaigns.definition.reasons import Reason
from campaigns.ledger.bulk import stage, stage_keys
from campaigns.ledger.members import close_members
from campaigns.ledger.models import ACTIVE, GOAL, Enrolment, Member, Person
from targeting.identifiers import key_problem
from targeting.schema import PERSON_KEY

KEY_COLUMNS = ("ben_nir_psa", "ben_rng_gem")
DATE_COLUMNS = ("date_adhesion", "date")
CHANNEL_COLUMN = "canal"
FEED_COLUMNS = (*KEY_COLUMNS, "date_adhesion", CHANNEL_COLUMN)  # today's full header
ENROLMENT_CHANNELS = ("online", "paper", "doctor", "phone")
UNKNOWN_CHANNEL = "unknown"


@dataclass
class FeedReport:
    """What an ingestion did, with each rejected line and why (never a cell's value)."""

    file: str
    rows: int = 0
    new: int = 0
    already_known: int = 0
    members_closed: int = 0
    errors: list[str] = field(default_factory=list)


def _header(path: Path, names: list[str], date_column: str, report: FeedReport) -> str | None:
    """The feed's date column, or None (the missing columns are reported)."""
    accepted = list(dict.fromkeys((date_column, *DATE_COLUMNS)))
    dates = [c for c in accepted if c in names]
    missing = [c for c in KEY_COLUMNS if c not in names]
    if not dates:
        missing.append(" ou ".join(accepted))
    if missing:
        report.errors.append(f"{path.name}, ligne 1 : colonnes manquantes {', '.join(missing)}")
        return None
    return dates[0]


def _text(path: Path, report: FeedReport) -> str | None:
    """The file as text, or None with the line and column where it stops being UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        column = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        report.errors.append(
            f"{path.name}, ligne {line}, colonne {column} : pas du texte UTF-8 ; "
            "enregistrez le fichier en UTF-8"
        )
        return None


def _parse(
    path: Path, report: FeedReport, date_column: str = "date_adhesion"
) -> list[dict[str, Any]]:
    """The good rows; each bad line is named in `report.errors` by line and column, never value.

    Columns: the person's key, the goal's date (`date_column`, or `date_adhesion`, or
    `date`) and, optionally, the channel (`canal`).
    """
    rows: list[dict[str, Any]] = []
    text = _text(path, report)
    if text is None:
        return rows
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        names = list(reader.fieldnames or [])
        on_column = _header(path, names, date_column, report)
        if on_column is None:
            return rows
        with_channel = CHANNEL_COLUMN in names
        for raw in reader:
            line_no = reader.reader.line_num  # the file's line, even after a quoted line break
            report.rows += 1
            bad = [(c, why) for c in PERSON_KEY if (why := key_problem(c, raw[c])) is not None]
            try:
                on = date.fromisoformat((raw[on_column] or "").strip())
            except ValueError:
                bad.append((on_column, "n'est pas une date (AAAA-MM-JJ)"))
            canal = (raw[CHANNEL_COLUMN] or "").strip() if with_channel else UNKNOWN_CHANNEL
            if with_channel and canal not in ENROLMENT_CHANNELS:
                bad.append((CHANNEL_COLUMN, f"n'est pas l'un de {', '.join(ENROLMENT_CHANNELS)}"))
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
    campaign_id: str,
    programme: str,
    date_column: str = "date_adhesion",
    now: datetime | None = None,
) -> FeedReport:
    """Ingest one campaign's feed file; a bad line is reported and skipped, the rest goes in.

    Every row is credited to `campaign_id` only: the same person in another campaign's
    feed is that campaign's business.
    """
    now = now or utcnow()
    report = FeedReport(file=path.name)
    rows = _parse(path, report, date_column)
    if not rows:
        return report
    report.new, report.members_closed = record_goal_rows(
        session=session,
        campaign_id=campaign_id,
        programme=programme,
        rows=rows,
        source=path.name,
        reason=Reason.ENROLLED,
        closed_by="enrolment_feed",
        now=now,
    )
    report.already_known = len(rows) - report.new
    return report


_GOAL_COLUMNS = [
    ("ben_nir_psa", "text"),
    ("ben_rng_gem", "int"),
    ("enrolled_on", "date"),
    ("channel", "text"),
]


def _insert_goal_rows(
    session: Session, campaign_id: str, programme: str, rows: list[dict[str, Any]], source: str
) -> int:
    """Goal rows not in the ledger yet, inserted; how many were new."""
    if session.get_bind().dialect.name == "postgresql":
        # One COPY and one statement, whatever the number of rows (a flu wave's observation).
        stage(
            session=session,
            name="_goal_rows",
            columns=_GOAL_COLUMNS,
            rows=([r[c] for c, _ in _GOAL_COLUMNS] for r in rows),
        )
        result = session.connection().exec_driver_sql(
            "INSERT INTO enrolment (campaign_id, programme, source, ben_nir_psa, ben_rng_gem, "
            "enrolled_on, channel) SELECT %(c)s, %(p)s, %(s)s, ben_nir_psa, ben_rng_gem, "
            "enrolled_on, channel FROM _goal_rows "
            "ON CONFLICT (ben_nir_psa, ben_rng_gem, campaign_id) DO NOTHING",
            {"c": campaign_id, "p": programme, "s": source},
        )
        return int(result.rowcount)
    values = [
        {**r, "campaign_id": campaign_id, "programme": programme, "source": source} for r in rows
    ]
    inserted = 0
    for i in range(0, len(values), 1000):
        stmt = (
            sqlite.insert(Enrolment)
            .values(values[i : i + 1000])
            .on_conflict_do_nothing(index_elements=["ben_nir_psa", "ben_rng_gem", "campaign_id"])
            .returning(col(Enrolment.id))
        )
        inserted += len(session.execute(stmt).all())
    return inserted


def record_goal_rows(
    *,
    session: Session,
    campaign_id: str,
    programme: str,
    rows: list[dict[str, Any]],
    source: str,
    reason: Reason,
    closed_by: str,
    now: datetime,
) -> tuple[int, int]:
    """Record goal rows (key, enrolled_on, channel) for one campaign, once each, and close its
    active members among them (status goal); how many rows were new, how many closed."""
    inserted = _insert_goal_rows(session, campaign_id, programme, rows, source)
    keys = list(dict.fromkeys((r["ben_nir_psa"], r["ben_rng_gem"]) for r in rows))
    closed = close_enrolled_members(
        session=session,
        campaign_id=campaign_id,
        keys=keys,
        now=now,
        reason=reason,
        source=closed_by,
    )
    return inserted, closed


def close_enrolled_members(
    *,
    session: Session,
    campaign_id: str,
    keys: list[tuple[str, int]],
    now: datetime,
    reason: Reason = Reason.ENROLLED,
    source: str = "enrolment_feed",
) -> int:
    """Stop the cascade, the same day, of the campaign's active members with a goal row."""
    if not keys:
        return 0
    # The keys go to the database once; one join finds the members to close.
    stage_keys(session=session, name="_goal_keys", keys=keys)
    staged = table("_goal_keys", column("ben_nir_psa"), column("ben_rng_gem"))
    member_ids = [
        int(mid)
        for (mid,) in session.execute(
            select(col(Member.id))
            .join(Person, col(Person.id) == col(Member.person_id))
            .join(
                staged,
                (staged.c.ben_nir_psa == col(Person.ben_nir_psa))
                & (staged.c.ben_rng_gem == col(Person.ben_rng_gem)),
            )
            .join(
                Enrolment,
                (col(Enrolment.ben_nir_psa) == col(Person.ben_nir_psa))
                & (col(Enrolment.ben_rng_gem) == col(Person.ben_rng_gem))
                & (col(Enrolment.campaign_id) == col(Member.campaign_id)),
            )
            .where(col(Member.status) == ACTIVE, col(Member.campaign_id) == campaign_id)
            .order_by(col(Member.id))
        ).all()
    ]
    return close_members(
        session=session,
        member_ids=member_ids,
        status=GOAL,
        reason=reason,
        today=paris_today(now),
        source=source,
        now=now,
    )
