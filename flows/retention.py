"""Retention (decree 2012-1249) as a scheduled flow: a dry run by default, and a report.

The task runs `campaigns.app.retention.run_retention` (people in database batches, one
transaction per batch, the run audited); the flow publishes the report as artifacts. The report
holds counts and dates only: no name, no NIR, no person or member id.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from campaigns.app.retention import BATCH_SIZE, report_markdown, report_rows, run_retention
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.retention import RetentionReport
from flows.runtime import configure_database, retry_if_transient, run_day


@task(
    timeout_seconds=7200, retries=2, retry_delay_seconds=60, retry_condition_fn=retry_if_transient
)
def retention_task(as_of: date, dry_run: bool, batch_size: int) -> RetentionReport:
    """The retention use case over every person (batches are idempotent: a retry resumes)."""
    with session_scope(get_engine()) as s:
        return run_retention(
            session=s, actor="flow:retention", as_of=as_of, dry_run=dry_run, batch_size=batch_size
        )


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
