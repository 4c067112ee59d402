"""Retention (decree 2012-1249) as a use case: the CLI and the flow run it and read its report.

The people are walked in batches, each committed on its own (a long run holds no lock for
long and a retry resumes); the run is audited once, with counts only: no name, no NIR, no id.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from campaigns.ledger.audit import record
from campaigns.ledger.retention import RETENTION_YEARS, RetentionReport, apply_retention

BATCH_SIZE = 2000


def run_retention(
    *,
    session: Session,
    actor: str,
    as_of: date,
    dry_run: bool = True,
    years: int = RETENTION_YEARS,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> RetentionReport:
    """Every person, batch after batch (each batch committed), then one audit event."""
    summary: RetentionReport | None = None
    after = 0
    while True:
        r = apply_retention(
            session=session,
            as_of=as_of,
            years=years,
            dry_run=dry_run,
            after_id=after,
            limit=batch_size,
        )
        session.commit()
        if summary is None:
            summary = RetentionReport(as_of=as_of, cutoff=r.cutoff, dry_run=dry_run)
        if r.last_person_id == 0:  # an empty batch: everyone has been seen
            break
        summary.add(r)
        after = r.last_person_id
    record(
        session=session,
        actor=actor,
        action="retention_dry_run" if dry_run else "retention_apply",
        target="retention",
        detail=summary.as_dict(),
        now=now,
    )
    return summary


def report_rows(summary: RetentionReport) -> list[dict[str, Any]]:
    """One row per campaign: the people anonymised there (or to be, in a dry run)."""
    return [{"campaign": cid, "people": n} for cid, n in sorted(summary.per_campaign.items())]


def report_markdown(summary: RetentionReport) -> str:
    """The report a person reads: what was (or would be) anonymised, and why these people."""
    verb = (
        "seraient anonymisées (simulation : rien n'a changé)" if summary.dry_run else "anonymisées"
    )
    oldest = summary.oldest_last_offer.strftime("%d/%m/%Y") if summary.oldest_last_offer else "—"
    lines = [
        f"# Durée de conservation au {summary.as_of.strftime('%d/%m/%Y')}",
        "",
        "Personnes non adhérentes dont la dernière proposition ou l'entrée date du "
        f"{summary.cutoff.strftime('%d/%m/%Y')} ou avant (décret 2012-1249, "
        f"{RETENTION_YEARS} ans).",
        "",
        f"- {summary.anonymised} personnes {verb}",
        f"- plus ancienne dernière proposition parmi elles : {oldest}",
        f"- conservées : {summary.kept_enrolled} adhérentes, "
        f"{summary.kept_recent} sollicitées récemment",
        f"- déjà anonymes : {summary.already_anonymous}",
        "",
        "| campagne | personnes |",
        "|---|---|",
    ]
    lines += [f"| {r['campaign']} | {r['people']} |" for r in report_rows(summary)]
    if not summary.per_campaign:
        lines.append("| — | 0 |")
    return "\n".join(lines)
