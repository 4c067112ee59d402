"""Prefect flows: the campaign's day as one chained run, and each stage runnable on its own.

Flows orchestrate stages and batches; per-person state lives in the database, so the
number of task runs does not grow with the number of people (one task per stage, or per
channel, each looping over database batches with a transaction per batch).

Every task has a timeout and retries only what can recover (the network, a restarting
database, a busy provider): a missing extract, an unknown campaign or an unconfigured
database fails at once, with the stage named.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Failed

from campaigns.app import stages
from campaigns.app.run_labels import stage_label
from campaigns.clock import utcnow
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import get_engine
from campaigns.policy.calendar import is_working_day
from campaigns.settings import get_settings
from flows.adapters import batch_size_for, build_adapters
from flows.runtime import ConfigurationError, configure_database, retry_if_transient, run_day

IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [10, 60, 300],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}
# The calendar dispatch follows: the print house and the platform work on these days.
NATIONAL_CALENDAR = "75"
DISPATCHED = ("mailbox", "email", "letter")
# The deployment (prefect.yaml) whose runs the workers share for a partitioned tick.
PARTITION_DEPLOYMENT = "cascade-tick-partition/cascade-tick-partition"

# The day's stages in their order, in the words the runs page uses too.
STAGE_LABELS = {
    stage: stage_label(stage)
    for stage in (
        "preflight", "enrolments", "goals", "targeting", "validation", "tick", "dispatch", "report"
    )
}  # fmt: skip


def _extract_dir(extract_dir: str | None) -> Path:
    return Path(extract_dir) if extract_dir else get_settings().resolved_extract_dir


def _feed_files(feed_dir: str | None, campaign_id: str | None = None) -> list[str]:
    """The campaign's feed files: its own sub-folder of the feed folder when there is one
    (`<feeds>/<campaign id>/*.csv`), else the files of the feed folder itself."""
    folder = Path(feed_dir) if feed_dir else get_settings().feeds_dir
    if campaign_id is not None and (folder / campaign_id).is_dir():
        folder = folder / campaign_id
    return sorted(str(p) for p in folder.glob("*.csv")) if folder.exists() else []


@task(timeout_seconds=300, **IO_RETRIES)
def preflight_task(campaign_id: str, extract_dir: str | None, needs_extract: bool) -> str:
    """The database is named and reachable, the campaign exists, the extract is there."""
    configure_database()
    get_engine()
    load_campaign(campaign_id)
    if needs_extract:
        extract = _extract_dir(extract_dir)
        if not extract.is_dir():
            raise ConfigurationError(
                f"extrait introuvable : {extract} (paramètre extract_dir ou RELANCE_EXTRACT_DIR)"
            )
    return campaign_id


@task(timeout_seconds=3600, **IO_RETRIES)
def targeting_task(campaign_id: str, extract_dir: str | None, day: date) -> dict[str, int]:
    """Targeting over the extract, then admissions."""
    c = load_campaign(campaign_id)
    engine = get_engine()
    stages.register(engine=engine, campaign=c)
    return stages.targeting_stage(
        engine=engine, campaign=c, extract=_extract_dir(extract_dir), day=day
    )


@task(timeout_seconds=600, **IO_RETRIES)
def validation_check_task(campaign_id: str, day: date) -> dict[str, Any]:
    """Expire a list past its deadline; say whether contacts may start and what waits."""
    return stages.validation_check(engine=get_engine(), campaign_id=campaign_id, day=day)


@task(timeout_seconds=3600, **IO_RETRIES)
def tick_task(campaign_id: str, day: date) -> dict[str, int]:
    """The cascade tick (idempotent: a retry plans nothing twice)."""
    settings = get_settings()
    return stages.tick_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        day=day,
        batch_size=settings.tick_batch_size,
        workers=settings.tick_workers,
    )


@task(timeout_seconds=3600, **IO_RETRIES)
def dispatch_task(campaign_id: str, channel: str, day: date) -> dict[str, int]:
    """Send one channel's due actions (calls providers; keys make a retry safe)."""
    settings = get_settings()
    return stages.dispatch_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        adapters=build_adapters(settings),
        day=day,
        channel=channel,
        batch_size=batch_size_for(settings, channel),
        lanes=settings.dispatch_lanes,
    )


@task(timeout_seconds=1800, **IO_RETRIES)
def mailbox_reads_task(campaign_id: str, day: date) -> dict[str, int]:
    """Ask the mailbox which messages were read (reads recorded once)."""
    settings = get_settings()
    return stages.mailbox_reads_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        gateway=build_adapters(settings).mailbox,
        day=day,
        batch_size=settings.dispatch_batch_size,
    )


@task(timeout_seconds=1800, **IO_RETRIES)
def enrolment_task(campaign_id: str, files: list[str], day: date) -> dict[str, Any]:
    """Ingest enrolment files (idempotent)."""
    return stages.enrolment_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        files=[Path(f) for f in files],
        day=day,
    )


@task(timeout_seconds=1800, **IO_RETRIES)
def goals_task(campaign_id: str, extract_dir: str | None, day: date) -> dict[str, Any]:
    """Observe a care act / registry fact goal in the extract; close who reached it."""
    return stages.goal_observation_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        extract=_extract_dir(extract_dir),
        day=day,
    )


@task(timeout_seconds=600, **IO_RETRIES)
def report_task(campaign_id: str) -> list[dict[str, Any]]:
    """The objectives table, as plain rows."""
    rows = stages.report_stage(engine=get_engine(), campaign=load_campaign(campaign_id))
    return [r.as_dict() for r in rows]


@task(timeout_seconds=120, **IO_RETRIES)
def ticked_task(campaign_id: str, day: date) -> bool:
    """Whether the day's tick has run (an afternoon pass dispatches only after it)."""
    return stages.ticked(engine=get_engine(), campaign_id=campaign_id, day=day)


@task(timeout_seconds=120, **IO_RETRIES)
def audit_checkpoint_task() -> list[dict[str, Any]]:
    """Attest each audit lane's last event outside the database (file and artifact)."""
    lines = stages.audit_checkpoint_stage(engine=get_engine())
    if lines:
        create_markdown_artifact(
            key="audit-checkpoint",
            markdown="\n".join(
                f"- Point de contrôle du journal d'audit, voie {line['lane']} : événement "
                f"n° {line['seq']}, empreinte `{line['hash']}`, signé `{line['mac']}` "
                f"({line['at']})."
                for line in lines
            ),
            description="Dernier événement d'audit de chaque voie attesté hors de la base",
        )
    return lines


def _dispatch(campaign_id: str, channels: tuple[str, ...], day: date) -> dict[str, Any]:
    if not is_working_day(day, NATIONAL_CALENDAR):
        get_run_logger().info("%s : jour non ouvré, aucun envoi", day.isoformat())
        out: dict[str, Any] = {ch: {"non_ouvre": 1} for ch in channels}
    else:
        # The mailbox goes first: a deposited message queues its e-mail notice, sent the same day.
        first = [ch for ch in channels if ch != "email"]
        futures = {ch: dispatch_task.submit(campaign_id, ch, day) for ch in first}
        out = {ch: futures[ch].result() for ch in first if ch == "mailbox"}
        if "email" in channels:
            out["email"] = dispatch_task.submit(campaign_id, "email", day).result()
        out.update({ch: f.result() for ch, f in futures.items() if ch not in out})
    if "mailbox" in channels:
        out["mailbox_reads"] = mailbox_reads_task(campaign_id, day)
    return out


@flow(name="daily-targeting")
def daily_targeting(
    campaign_id: str, extract_dir: str | None = None, day: date | None = None
) -> dict[str, int]:
    """Admit the people who entered the horizon on the day; close those whose situation changed."""
    d = run_day(day)
    preflight_task(campaign_id, extract_dir, True)
    return targeting_task(campaign_id, extract_dir, d)


@flow(name="cascade-tick")
def cascade_tick(campaign_id: str, day: date | None = None) -> dict[str, int]:
    """Plan the day's actions for every member in the cascade."""
    d = run_day(day)
    preflight_task(campaign_id, None, False)
    return tick_task(campaign_id, d)


@task(timeout_seconds=600, **IO_RETRIES)
def partitions_task(campaign_id: str, day: date, parts: int) -> list[tuple[int, int]]:
    """The members' id ranges, one per partition run (none: the whole tick runs here)."""
    return stages.tick_partitions(
        engine=get_engine(), campaign=load_campaign(campaign_id), day=day, parts=parts
    )


@task(timeout_seconds=3600, **IO_RETRIES)
def tick_partition_task(campaign_id: str, day: date, lo: int, hi: int) -> dict[str, int]:
    """One partition of the tick (idempotent like the whole tick)."""
    return stages.tick_partition_stage(
        engine=get_engine(),
        campaign=load_campaign(campaign_id),
        day=day,
        within=(lo, hi),
        batch_size=get_settings().tick_batch_size,
        workers=get_settings().tick_workers,
    )


@task(timeout_seconds=120, **IO_RETRIES)
def partitions_done_task(campaign_id: str, day: date, started: datetime) -> dict[str, int]:
    """Record the day's tick from its partitions' counts."""
    return stages.tick_partitions_done(
        engine=get_engine(), campaign_id=campaign_id, day=day, started=started
    )


@flow(name="cascade-tick-partition")
def cascade_tick_partition(
    campaign_id: str, lo: int, hi: int, day: date | None = None
) -> dict[str, int]:
    """Plan the members whose id is in [lo, hi]: one partition of a shared tick."""
    d = run_day(day)
    preflight_task(campaign_id, None, False)
    return tick_partition_task(campaign_id, d, lo, hi)


@flow(name="cascade-tick-partitioned")
def cascade_tick_partitioned(
    campaign_id: str,
    parts: int = 4,
    day: date | None = None,
    partition_deployment: str = PARTITION_DEPLOYMENT,
    poll_seconds: float = 2.0,
) -> dict[str, int] | State[Any]:
    """The tick split into `parts` flow runs of the partition deployment, which the work pool's
    workers share (one worker runs them in turn); recorded as the day's tick once all are done."""
    from prefect.deployments import run_deployment
    from prefect.runtime import flow_run

    d = run_day(day)
    started = utcnow()
    preflight_task(campaign_id, None, False)
    ranges = partitions_task(campaign_id, d, parts)
    if not ranges:  # paused, ended or nobody: the whole tick says so (and closes an ended one)
        return tick_task(campaign_id, d)
    # The parent's id in each key: a retried parent finds its partitions, it does not add more.
    runs: list[Any] = [  # run_deployment is sync-compatible: in a sync flow it returns the run
        run_deployment(
            name=partition_deployment,
            parameters={"campaign_id": campaign_id, "lo": lo, "hi": hi, "day": d.isoformat()},
            timeout=0,
            idempotency_key=f"{flow_run.id}:{campaign_id}:{d.isoformat()}:{lo}-{hi}",
            tags=[f"campaign:{campaign_id}"],
        )
        for lo, hi in ranges
    ]
    failed = _wait_for_runs([r.id for r in runs], poll_seconds)
    if failed:
        return Failed(
            message=f"planification du {d.isoformat()} de {campaign_id} : "
            f"{len(failed)} partition(s) sur {len(runs)} en échec ({'; '.join(failed)}) ; "
            "relancer la planification reprend là où elle s'est arrêtée"
        )
    return partitions_done_task(campaign_id, d, started)


def _wait_for_runs(ids: list[Any], poll_seconds: float) -> list[str]:
    """Wait until every run is final; the failed ones, named with their state's message."""
    from prefect.client.orchestration import get_client

    pending, failed = set(ids), []
    with get_client(sync_client=True) as client:
        while pending:
            for run_id in sorted(pending, key=str):
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    pending.discard(run_id)
                    if not run.state.is_completed():
                        failed.append(f"{run.name} : {run.state.name} {run.state.message or ''}")
            if pending:
                time.sleep(poll_seconds)
    return failed


@flow(name="channel-dispatch")
def channel_dispatch(
    campaign_id: str,
    channels: tuple[str, ...] = DISPATCHED,
    day: date | None = None,
    require_tick: bool = False,
) -> dict[str, Any]:
    """Send what is due on each dispatched channel (calls go to the advisers' list).

    With `require_tick` (the afternoon pass), nothing goes out unless the day's tick ran:
    a day whose chained run failed stays stopped.
    """
    d = run_day(day)
    preflight_task(campaign_id, None, False)
    if require_tick and not ticked_task(campaign_id, d):
        raise ConfigurationError(
            f"la planification du {d.isoformat()} n'a pas tourné pour {campaign_id} : "
            "aucun envoi avant elle (relancez la journée : docs/operations.md)"
        )
    return _dispatch(campaign_id, channels, d)


@flow(name="enrolment-feed")
def enrolment_feed(
    campaign_id: str, feed_dir: str | None = None, day: date | None = None
) -> dict[str, Any]:
    """Ingest every enrolment file in the feed folder (already-ingested rows change nothing)."""
    d = run_day(day)
    preflight_task(campaign_id, None, False)
    report = enrolment_task(campaign_id, _feed_files(feed_dir, campaign_id), d)
    if report["errors"]:
        get_run_logger().warning(
            "%d lignes rejetées dans le flux d'adhésions : %s",
            len(report["errors"]),
            "; ".join(report["errors"][:20]),
        )
    return report


def _publish_report(campaign_id: str, day: date, rows: list[dict[str, Any]]) -> None:
    table = [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    title = f"{campaign_id} — objectifs par échelon au {day.strftime('%d/%m/%Y')}"
    create_table_artifact(key=f"{campaign_id}-objectives", table=table, description=title)
    goal = load_campaign(campaign_id).definition.labels.goal
    md = [
        f"# {title}",
        "",
        f"| échelon | éligibles | {goal} | objectif | atteinte |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        att = f"{r['attainment']:.0f} %" if r["attainment"] is not None else "—"
        objective = str(r["objective"])
        if r.get("objective_rate") is not None:  # a rate objective: its share of the eligible
            objective += f" ({100 * r['objective_rate']:.0f} % des éligibles)"
        md.append(f"| {r['name']} | {r['eligible']} | {r['enrolled']} | {objective} | {att} |")
    create_markdown_artifact(
        key=f"{campaign_id}-objectives-md", markdown="\n".join(md), description=title
    )


@flow(name="objectives-report")
def objectives_report(campaign_id: str, day: date | None = None) -> list[dict[str, Any]]:
    """Enrolments against objectives per échelon, published as artifacts naming the day."""
    d = run_day(day)
    preflight_task(campaign_id, None, False)
    rows = report_task(campaign_id)
    _publish_report(campaign_id, d, rows)
    return rows


def _day_summary(campaign_id: str, day: date, done: dict[str, Any], failed: str | None) -> str:
    lines = [f"# {campaign_id} — journée du {day.strftime('%d/%m/%Y')}", ""]
    for stage, label in STAGE_LABELS.items():
        if stage in done:
            lines.append(f"- {label} : terminé")
        elif stage == failed:
            lines.append(f"- {label} : **en échec**")
        elif failed:
            lines.append(f"- {label} : non lancé (une étape précédente a échoué)")
    return "\n".join(lines)


@flow(name="campaign-day")
def campaign_day(
    campaign_id: str,
    extract_dir: str | None = None,
    feed_dir: str | None = None,
    day: date | None = None,
) -> dict[str, Any] | State[Any]:
    """The whole day in order: feeds, targeting, validation, tick, dispatch, report.

    A failed stage stops every stage after it (a tick on a failed targeting, or a dispatch
    on a failed feed, would contact the wrong people) and fails the day, naming the stage.
    """
    d = run_day(day)
    plan: list[tuple[str, Any, tuple[Any, ...]]] = [
        ("preflight", preflight_task, (campaign_id, extract_dir, True)),
        ("enrolments", enrolment_task, (campaign_id, _feed_files(feed_dir, campaign_id), d)),
        ("goals", goals_task, (campaign_id, extract_dir, d)),
        ("targeting", targeting_task, (campaign_id, extract_dir, d)),
        ("validation", validation_check_task, (campaign_id, d)),
        ("tick", tick_task, (campaign_id, d)),
        ("dispatch", None, ()),
        ("report", report_task, (campaign_id,)),
    ]
    done: dict[str, Any] = {}
    for stage, fn, args in plan:
        state = _dispatch_state(campaign_id, d) if fn is None else fn(*args, return_state=True)
        if state.is_failed() or state.is_crashed():
            summary = _day_summary(campaign_id, d, done, stage)
            create_markdown_artifact(
                key=f"{campaign_id}-day", markdown=summary, description=f"{campaign_id} {d}"
            )
            return Failed(
                message=f"journée du {d.isoformat()} de {campaign_id} : l'étape "
                f"« {STAGE_LABELS[stage]} » a échoué ({state.message}) ; "
                "les étapes suivantes n'ont pas été lancées"
            )
        done[stage] = state.result()
    _publish_report(campaign_id, d, done["report"])
    audit_checkpoint_task(return_state=True)  # a failed checkpoint must not fail the day
    create_markdown_artifact(
        key=f"{campaign_id}-day",
        markdown=_day_summary(campaign_id, d, done, None),
        description=f"{campaign_id} {d}",
    )
    done.pop("preflight")
    return {"day": d.isoformat(), **done}


def _dispatch_state(campaign_id: str, day: date) -> State[Any]:
    """The dispatch stage as one state: failed if any channel failed."""
    from prefect.states import Completed

    try:
        return Completed(data=_dispatch(campaign_id, DISPATCHED, day))
    except Exception as e:  # a channel's task failed: its state says why
        return Failed(message=f"{type(e).__name__}: {e}")
