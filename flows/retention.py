"""Retention (decree 2012-1249) as a scheduled flow: a dry run by default, and a report.

The task walks the people in database batches (one transaction per batch) through
`campaigns.retention.apply_retention`; the flow publishes the report as artifacts. The report
holds counts and dates only: no name, no NIR, no person or member id.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy.engine import Engine

from campaigns.db import get_engine, session_scope
from campaigns.retention import RETENTION_YEARS, RetentionReport, apply_retention
from flows.runtime import configure_database, retry_if_transient, run_day

BATCH_SIZE = 2000


def run_retention(
    *,
    engine: Engine,
    as_of: date,
    dry_run: bool = True,
    years: int = RETENTION_YEARS,
    batch_size: int = BATCH_SIZE,
) -> RetentionReport:
    """Every person, batch after batch, each batch in its own transaction."""
    summary: RetentionReport | None = None
    after = 0
    while True:
        with session_scope(engine) as s:
            r = apply_retention(
                session=s,
                as_of=as_of,
                years=years,
                dry_run=dry_run,
                after_id=after,
                limit=batch_size,
            )
        if summary is None:
            summary = RetentionReport(as_of=as_of, cutoff=r.cutoff, dry_run=dry_run)
        if r.last_person_id == 0:  # an empty batch: everyone has been seen
            return summary
        summary.add(r)
        after = r.last_person_id


def report_rows(summary: RetentionReport) -> list[dict[str, Any]]:
    """One row per campaign: the people anonymised there (or to be, in a dry run)."""
    return [{"campaign": cid, "people": n} for cid, n in sorted(summary.per_campaign.items())]


def report_markdown(summary: RetentionReport) -> str:
    """The report a person reads: what was (or would be) anonymised, and why these people."""
    verb = (
        "seraient anonymisées (simulation : rien n'a changé)"
        if summary.dry_run
        else "anonymisées"
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


@task(
    timeout_seconds=7200, retries=2, retry_delay_seconds=60, retry_condition_fn=retry_if_transient
)
def retention_task(as_of: date, dry_run: bool, batch_size: int) -> RetentionReport:
    """The retention service over every person (batches are idempotent: a retry resumes)."""
    return run_retention(engine=get_engine(), as_of=as_of, dry_run=dry_run, batch_size=batch_size)


@flow(name="retention")
def retention(
    dry_run: bool = True, as_of: date | None = None, batch_size: int = BATCH_SIZE
) -> dict[str, Any]:
    """Anonymise (or, in a dry run, count) people not enrolled 3 years after the last offer."""
    configure_database()
    day = run_day(as_of)
    summary = retention_task(day, dry_run, batch_size)
    title = f"Conservation au {day.strftime('%d/%m/%Y')} : personnes " + (
        "à anonymiser par campagne (simulation)" if dry_run else "anonymisées par campagne"
    )
    create_table_artifact(key="retention", table=report_rows(summary), description=title)
    create_markdown_artifact(
        key="retention-md", markdown=report_markdown(summary), description=title
    )
    return summary.as_dict()
