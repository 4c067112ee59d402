"""A campaign's schedules as use cases: its deployments, launching its day, its runs.

The ledger stays the truth of a campaign's state: a paused campaign plans and sends nothing
even if its schedules could not be paused, so an unreachable scheduler is recorded in the
audit event, never fatal to a pause or an end (`campaigns.app.scheduler.follow_state`).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from campaigns.app.lifecycle import STATE_LABELS, campaign_state
from campaigns.app.scheduler import (
    NO_SCHEDULER,
    Launch,
    RunInfo,
    Scheduled,
    Scheduler,
    SchedulingError,
    deployment_specs,
)
from campaigns.clock import paris_today, utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.audit import record
from campaigns.ledger.models import Campaign, StageRun


def _known(session: Session, campaign_id: str) -> None:
    if session.get(Campaign, campaign_id) is None:
        raise SchedulingError(f"{campaign_id} : campagne inconnue du registre")


def _need(scheduler: Scheduler | None) -> Scheduler:
    if scheduler is None:
        raise SchedulingError(NO_SCHEDULER)
    return scheduler


def schedule_campaign(
    *,
    session: Session,
    actor: str,
    definition: CampaignDefinition,
    scheduler: Scheduler | None,
    now: datetime | None = None,
) -> list[Scheduled]:
    """Create or update the campaign's deployments; active unless it is paused or ended."""
    now = now or utcnow()
    sched = _need(scheduler)
    state = campaign_state(
        session=session, campaign_id=definition.id, definition=definition, today=paris_today(now)
    )
    if state == "ended":
        raise SchedulingError(
            f"{definition.id} : une campagne {STATE_LABELS[state]} ne se planifie plus"
        )
    active = state != "paused"
    done = sched.apply(deployment_specs(definition), active=active)
    record(
        session=session,
        actor=actor,
        action="campaign_scheduled",
        target=definition.id,
        detail={"deployments": [d.name for d in done], "active": active},
        now=now,
    )
    return done


def launch_day(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    scheduler: Scheduler | None,
    now: datetime | None = None,
) -> Launch:
    """Start the campaign's day now (after its list is approved), and say what comes next."""
    now = now or utcnow()
    _known(session, campaign_id)
    sched = _need(scheduler)
    try:
        run_id = sched.launch_now(campaign_id)
    except LookupError as e:
        raise SchedulingError(
            f"{campaign_id} : la campagne n'est pas planifiée ; "
            f"lancez d'abord « relance campaigns schedule {campaign_id} »"
        ) from e
    nxt = sched.next_runs([campaign_id]).get(campaign_id)
    record(
        session=session,
        actor=actor,
        action="campaign_day_launched",
        target=campaign_id,
        detail={"run": run_id},
        now=now,
    )
    return Launch(run_id=run_id, url=sched.run_url(run_id), next_run=nxt)


def campaign_runs(
    *,
    session: Session,
    campaign_id: str,
    scheduler: Scheduler | None,
    limit: int = 30,
) -> list[RunInfo]:
    """The campaign's runs, newest first, with the counts its stages wrote for their day."""
    _known(session, campaign_id)
    runs = _need(scheduler).runs(campaign_id, limit=limit)
    days = {r.day for r in runs if r.day is not None}
    counts: dict[date, dict[str, Any]] = {}
    if days:
        rows = session.exec(
            select(StageRun)
            .where(StageRun.campaign_id == campaign_id, col(StageRun.day).in_(days))
            .order_by(col(StageRun.id))
        ).all()
        for row in rows:
            counts.setdefault(row.day, {})[row.stage] = row.counts
    return [dataclasses.replace(r, counts=counts.get(r.day, {}) if r.day else {}) for r in runs]
