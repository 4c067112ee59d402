"""A campaign's schedules in the console: schedule it, launch its day, follow its runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaigns.app.scheduler import RunInfo, Scheduler, SchedulingError, describe_next
from campaigns.app.scheduling import campaign_runs, launch_day, schedule_campaign
from campaigns.clock import paris_today
from campaigns.definition.catalog import load_campaign
from campaigns.definition.model import DefinitionError
from campaigns.ledger.models import User
from console.web.deps import CSRF, CampaignManager, SchedulerDep, SessionDep, render, roles

router = APIRouter()
UNREACHABLE = "planificateur injoignable"


def _to(cid: str, message: str) -> Response:
    return RedirectResponse(f"/campaigns/{cid}?m={quote(message)}", status_code=303)


@dataclass
class ScheduleFacts:
    """What the campaign pages say of the schedules: next runs, today's failures, a warning."""

    next_runs: dict[str, datetime] = field(default_factory=dict)
    failed_today: list[RunInfo] = field(default_factory=list)
    warning: str | None = None


def schedule_facts(
    scheduler: Scheduler | None, campaign_ids: list[str], today: date, *, runs: bool = False
) -> ScheduleFacts:
    """Next runs (and today's failed runs) from the orchestrator; never fails the page."""
    if scheduler is None:
        return ScheduleFacts(warning="aucun serveur Prefect configuré : rien n'est planifié")
    try:
        facts = ScheduleFacts(next_runs=scheduler.next_runs(campaign_ids))
        if runs:
            for cid in campaign_ids:
                facts.failed_today += [
                    r for r in scheduler.runs(cid, limit=20) if r.failed and r.day == today
                ]
        return facts
    except Exception as e:  # the console stays up when Prefect is down
        return ScheduleFacts(warning=f"{UNREACHABLE} ({type(e).__name__})")


def launched_message(
    *, s: SessionDep, user: User, cid: str, scheduler: Scheduler | None, now: datetime
) -> str:
    """Start the campaign's day now and say what comes next (or why it could not start)."""
    if scheduler is None:
        return (
            "aucun serveur Prefect configuré : la journée n'a pas démarré ; lancez-la avec "
            f"« relance campaigns launch {cid} » une fois les planifications en place"
        )
    try:
        done = launch_day(
            session=s, actor=user.username, campaign_id=cid, scheduler=scheduler, now=now
        )
    except SchedulingError as e:
        return str(e)
    except Exception as e:  # the approval holds; the day runs at its next scheduled time
        return f"{UNREACHABLE} ({type(e).__name__}) : la journée partira au prochain passage"
    return (
        f"journée de campagne démarrée (exécution {done.run_id[:8]}) : ciblage, cascade et "
        f"envois du jour ; prochaine exécution planifiée {describe_next(done.next_run)}"
    )


@router.post("/campaigns/{cid}/schedule", dependencies=CSRF)
def schedule_route(
    request: Request, cid: str, user: CampaignManager, s: SessionDep, scheduler: SchedulerDep
) -> Response:
    try:
        definition = load_campaign(cid).definition
        done = schedule_campaign(
            session=s,
            actor=user.username,
            definition=definition,
            scheduler=scheduler,
            now=request.app.state.clock(),
        )
    except (DefinitionError, SchedulingError) as e:
        return _to(cid, str(e))
    except Exception as e:
        return _to(cid, f"{UNREACHABLE} ({type(e).__name__}) : rien n'a changé")
    first = min((d.next_run for d in done if d.next_run), default=None)
    return _to(
        cid, f"{len(done)} planifications à jour ; prochaine exécution {describe_next(first)}"
    )


@router.post("/campaigns/{cid}/launch", dependencies=CSRF)
def launch_route(
    request: Request, cid: str, user: CampaignManager, s: SessionDep, scheduler: SchedulerDep
) -> Response:
    now = request.app.state.clock()
    return _to(cid, launched_message(s=s, user=user, cid=cid, scheduler=scheduler, now=now))


@router.get("/campaigns/{cid}/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    cid: str,
    user: Annotated[User, roles("campaign_manager", "supervisor")],
    s: SessionDep,
    scheduler: SchedulerDep,
) -> Response:
    today = paris_today(request.app.state.clock())
    runs: list[RunInfo] = []
    warning = None
    try:
        runs = campaign_runs(session=s, campaign_id=cid, scheduler=scheduler)
    except SchedulingError as e:
        warning = str(e)
    except Exception as e:
        warning = f"{UNREACHABLE} ({type(e).__name__})"
    facts = schedule_facts(scheduler, [cid], today) if warning is None else ScheduleFacts()
    return render(
        request,
        "runs.html",
        user,
        cid=cid,
        runs=runs,
        today=today,
        warning=warning or facts.warning,
        next_run=facts.next_runs.get(cid),
    )
