"""Prefect flows: one per daily stage, and the day that chains them.

Flows orchestrate stages and batches; per-person state lives in the database, so the
number of task runs does not grow with the number of people (one task per stage, or per
channel, each looping over database batches with a transaction per batch).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from campaigns.catalog import load_campaign
from campaigns.db import get_engine
from campaigns.settings import get_settings
from flows import stages
from flows.adapters import build_adapters
from flows.dates import paris_today


@task(retries=2, retry_delay_seconds=30)
def targeting_task(campaign_id: str, extract_dir: str, day: date) -> dict[str, int]:
    """Targeting over the extract, then admissions (reads files: retried)."""
    c = load_campaign(campaign_id)
    engine = get_engine()
    stages.register(engine=engine, campaign=c)
    return stages.targeting_stage(engine=engine, campaign=c, extract=Path(extract_dir), day=day)


@task
def tick_task(campaign_id: str, day: date) -> dict[str, int]:
    """The cascade tick (database only: a retry would do the same, so none)."""
    settings = get_settings()
    return stages.tick_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        day=day,
        batch_size=settings.tick_batch_size,
    )


@task(retries=3, retry_delay_seconds=[10, 60, 300], retry_jitter_factor=0.5)
def dispatch_task(campaign_id: str, channel: str, day: date) -> dict[str, int]:
    """Send one channel's due actions (calls providers: retried; keys make it safe)."""
    settings = get_settings()
    return stages.dispatch_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        adapters=build_adapters(settings),
        day=day,
        channel=channel,
        batch_size=settings.dispatch_batch_size,
    )


@task(retries=3, retry_delay_seconds=[10, 60, 300], retry_jitter_factor=0.5)
def mailbox_reads_task(campaign_id: str, day: date) -> dict[str, int]:
    """Ask the mailbox which messages were read (calls a provider: retried; reads recorded once)."""
    settings = get_settings()
    return stages.mailbox_reads_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        gateway=build_adapters(settings).mailbox,
        day=day,
        batch_size=settings.dispatch_batch_size,
    )


@task(retries=2, retry_delay_seconds=30)
def enrolment_task(campaign_id: str, files: list[str], day: date) -> dict[str, Any]:
    """Ingest enrolment files (reads files: retried; ingestion is idempotent)."""
    return stages.enrolment_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        files=[Path(f) for f in files],
        day=day,
    )


@task
def report_task(campaign_id: str) -> list[dict[str, Any]]:
    """The objectives table, as plain rows."""
    rows = stages.report_stage(engine=get_engine(), campaign=load_campaign(campaign_id))
    return [r.as_dict() for r in rows]


@flow(name="daily-targeting")
def daily_targeting(
    campaign_id: str = "sophia-ald8", extract_dir: str = "var/extract", day: date | None = None
) -> dict[str, int]:
    """Admit the people who entered the horizon today; close those whose situation changed."""
    return targeting_task(campaign_id, extract_dir, day or paris_today())


@flow(name="cascade-tick")
def cascade_tick(campaign_id: str = "sophia-ald8", day: date | None = None) -> dict[str, int]:
    """Plan the day's actions for every member in the cascade."""
    return tick_task(campaign_id, day or paris_today())


@flow(name="channel-dispatch")
def channel_dispatch(
    campaign_id: str = "sophia-ald8",
    channels: tuple[str, ...] = ("mailbox", "email", "letter"),
    day: date | None = None,
) -> dict[str, dict[str, int]]:
    """Send what is due on each dispatched channel (calls go to the advisers' list)."""
    d = day or paris_today()
    # The mailbox goes first: a deposited message queues its e-mail notice, sent the same day.
    first = [ch for ch in channels if ch != "email"]
    futures = {ch: dispatch_task.submit(campaign_id, ch, d) for ch in first}
    out = {ch: futures[ch].result() for ch in first if ch == "mailbox"}
    if "email" in channels:
        out["email"] = dispatch_task.submit(campaign_id, "email", d).result()
    out.update({ch: f.result() for ch, f in futures.items() if ch not in out})
    if "mailbox" in channels:
        out["mailbox_reads"] = mailbox_reads_task(campaign_id, d)
    return out


@flow(name="enrolment-feed")
def enrolment_feed(
    campaign_id: str = "sophia-ald8", feed_dir: str | None = None, day: date | None = None
) -> dict[str, Any]:
    """Ingest every enrolment file in the feed folder (already-ingested rows change nothing)."""
    folder = Path(feed_dir) if feed_dir else get_settings().feeds_dir
    files = sorted(str(p) for p in folder.glob("*.csv")) if folder.exists() else []
    report = enrolment_task(campaign_id, files, day or paris_today())
    if report["errors"]:
        get_run_logger().warning(
            "%d malformed feed rows: %s", len(report["errors"]), "; ".join(report["errors"][:20])
        )
    return report


@flow(name="objectives-report")
def objectives_report(campaign_id: str = "sophia-ald8") -> list[dict[str, Any]]:
    """Enrolments against objectives per échelon, published as artifacts."""
    rows = report_task(campaign_id)
    table = [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    create_table_artifact(
        key=f"{campaign_id}-objectives",
        table=table,
        description="Enrolments against objectives, per échelon",
    )
    md = ["| échelon | eligible | enrolled | objective | attainment |", "|---|---|---|---|---|"]
    for r in rows:
        att = f"{r['attainment']:.0f} %" if r["attainment"] is not None else "—"
        md.append(f"| {r['name']} | {r['eligible']} | {r['enrolled']} | {r['objective']} | {att} |")
    create_markdown_artifact(key=f"{campaign_id}-objectives-md", markdown="\n".join(md))
    return rows


@flow(name="campaign-day")
def campaign_day(
    campaign_id: str = "sophia-ald8", extract_dir: str = "var/extract", day: date | None = None
) -> dict[str, Any]:
    """A whole day: targeting, tick, dispatch, enrolments, report — in that order."""
    d = day or paris_today()
    return {
        "targeting": daily_targeting(campaign_id, extract_dir, d),
        "tick": cascade_tick(campaign_id, d),
        "dispatch": channel_dispatch(campaign_id, day=d),
        "enrolments": enrolment_feed(campaign_id, day=d),
        "report": objectives_report(campaign_id),
    }
