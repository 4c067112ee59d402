"""A campaign's life as use cases: its state, pause, resume, end, and an overview of it.

States: draft → ready → validating → running ⇄ paused → ended. A state is derived where it
can be (draft: the folder does not load; ready: loads, not launched; validating: a list
awaits validation; running: launched; ended: past its end date) and stored where it is a
decision of its manager (`Campaign.paused_at`, `Campaign.ended_at`). Pausing stops new
actions (the tick plans nothing, dispatch sends nothing, no adviser is offered its calls)
without losing any: queued actions stay queued until it resumes, calls advisers held go
back to the queue, and targeting admits nobody new (they come in after the resume). Ending
cancels what is queued (campaign_ended) and lets every member go, as the tick does past the
end date.
The CLI and the console call these; each writes its audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.app.scheduler import Scheduler, follow_state
from campaigns.calls.queue import release_campaign
from campaigns.cascade.planner import campaign_ended
from campaigns.cascade.review import list_status, pending_list
from campaigns.cascade.tick import close_campaign
from campaigns.clock import paris_today, utcnow
from campaigns.definition.catalog import BrokenDraft, list_campaigns
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.audit import record
from campaigns.ledger.models import (
    QUEUED,
    Action,
    Campaign,
    CampaignDraft,
    CampaignVersion,
    Member,
)
from campaigns.ledger.registry import campaign_versions

State = Literal["draft", "ready", "validating", "running", "paused", "ended"]

STATE_LABELS: dict[str, str] = {
    "draft": "brouillon",
    "ready": "prête",
    "validating": "en validation",
    "running": "en cours",
    "paused": "en pause",
    "ended": "terminée",
}


class LifecycleError(ValueError):
    """A step the campaign's state does not allow (message in French)."""


@dataclass(frozen=True)
class Overview:
    """What a campaign manager needs to see of one campaign."""

    id: str
    name: str
    state: State
    start: date | None
    end: date | None
    members: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    version: int | None = None
    versions: list[tuple[int, date, str]] = field(default_factory=list)
    # Actions planned by each version of the definition (None: older than versioning).
    by_version: dict[int | None, int] = field(default_factory=dict)
    next_step: str = ""
    error: str | None = None
    # The next scheduled run (UTC, shown in Paris time); None: not scheduled. Filled by the
    # scheduling (Prefect deployments) where there is one.
    next_run: datetime | None = None
    # Each version: number, effective date, who made it (None: registered from a folder).
    authors: dict[int, str | None] = field(default_factory=dict)
    # A draft made in the console (not yet ready): edited and checked in the browser.
    console_draft: bool = False

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


def _d(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def campaign_state(
    *, session: Session, campaign_id: str, definition: CampaignDefinition | None, today: date
) -> State:
    """The campaign's state today (a registered campaign, or a valid folder not registered)."""
    row = session.get(Campaign, campaign_id)
    if row is not None and row.ended_at is not None:
        return "ended"
    if definition is not None and campaign_ended(definition, today):
        return "ended"
    if row is not None and row.paused_at is not None:
        return "paused"
    if row is not None and row.launched_at is not None:
        return "running"
    if pending_list(session=session, campaign_id=campaign_id) is not None:
        return "validating"
    return "ready"


def _row(session: Session, campaign_id: str) -> Campaign:
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise LifecycleError(f"{campaign_id} : campagne inconnue du registre")
    return row


def _definition(campaign_id: str) -> CampaignDefinition | None:
    return next((d for d in list_campaigns() if d.id == campaign_id), None)


def pause_campaign(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    definition: CampaignDefinition | None = None,
    scheduler: Scheduler | None = None,
    now: datetime | None = None,
) -> Campaign:
    """Stop new actions of a running campaign; what is queued stays queued, held."""
    now = now or utcnow()
    row = _row(session, campaign_id)
    definition = definition or _definition(campaign_id)
    state = campaign_state(
        session=session, campaign_id=campaign_id, definition=definition, today=paris_today(now)
    )
    if state != "running":
        raise LifecycleError(
            f"{campaign_id} : seule une campagne en cours peut être mise en pause "
            f"(état : {STATE_LABELS[state]})"
        )
    row.paused_at = now
    session.add(row)
    # Calls advisers hold go back to the queue, held there: nobody keeps working them.
    released = release_campaign(session=session, campaign_id=campaign_id)
    record(
        session=session,
        actor=actor,
        action="campaign_pause",
        target=campaign_id,
        detail={
            "queued_held": _queued(session, campaign_id),
            "calls_released": released,
            **follow_state(scheduler=scheduler, campaign_id=campaign_id, active=False),
        },
        now=now,
    )
    return row


def resume_campaign(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    scheduler: Scheduler | None = None,
    now: datetime | None = None,
) -> Campaign:
    """Take a paused campaign back: the next tick and dispatch carry on where it stopped."""
    now = now or utcnow()
    row = _row(session, campaign_id)
    if row.ended_at is not None or row.paused_at is None:
        state = "terminée" if row.ended_at is not None else "pas en pause"
        raise LifecycleError(f"{campaign_id} : impossible de reprendre, la campagne est {state}")
    paused_since = row.paused_at
    row.paused_at = None
    session.add(row)
    record(
        session=session,
        actor=actor,
        action="campaign_resume",
        target=campaign_id,
        detail={
            "paused_at": paused_since.isoformat(),
            "queued": _queued(session, campaign_id),
            **follow_state(scheduler=scheduler, campaign_id=campaign_id, active=True),
        },
        now=now,
    )
    return row


def end_campaign(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    today: date | None = None,
    scheduler: Scheduler | None = None,
    now: datetime | None = None,
    reason: str = "",
) -> dict[str, int]:
    """End the campaign now: what is queued is cancelled (campaign_ended), members leave."""
    now = now or utcnow()
    today = today or paris_today(now)
    row = _row(session, campaign_id)
    if row.ended_at is not None:
        raise LifecycleError(f"{campaign_id} : campagne déjà terminée le {_d(row.ended_at)}")
    row.ended_at, row.paused_at = now, None
    session.add(row)
    session.flush()
    counts = close_campaign(session=session, campaign_id=campaign_id, today=today, now=now)
    record(
        session=session,
        actor=actor,
        action="campaign_end",
        target=campaign_id,
        detail={
            **counts,
            **({"reason": reason} if reason else {}),
            **follow_state(scheduler=scheduler, campaign_id=campaign_id, active=False),
        },
        now=now,
    )
    return counts


def _queued(session: Session, campaign_id: str) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(Action)
            .where(Action.campaign_id == campaign_id, Action.state == QUEUED)
        ).one()
    )


def _counts(
    session: Session, model: type[Member] | type[Action], campaign_id: str
) -> dict[str, int]:
    column = col(Member.status) if model is Member else col(Action.state)
    owner = col(Member.campaign_id) if model is Member else col(Action.campaign_id)
    return {
        str(k): int(n)
        for k, n in session.execute(
            select(column, func.count()).where(owner == campaign_id).group_by(column)
        )
    }


def _by_version(session: Session, campaign_id: str) -> dict[int | None, int]:
    column = col(Action.definition_version)
    return {
        v: int(n)
        for v, n in session.execute(
            select(column, func.count()).where(Action.campaign_id == campaign_id).group_by(column)
        )
    }


def _next_step(
    session: Session,
    campaign_id: str,
    state: State,
    d: CampaignDefinition | None,
    row: Campaign | None,
) -> str:
    """The next step, in French, for the campaign manager."""
    if state == "ended":
        when = row.ended_at.date() if row and row.ended_at else (d.dates.end if d else None)
        return "aucune : la campagne est terminée" + (f" ({_d(when)})" if when else "")
    if state == "paused":
        return (
            f"reprendre la campagne (relance campaigns resume {campaign_id}) : "
            f"{_queued(session, campaign_id)} action(s) en attente"
        )
    if state == "validating":
        lst = pending_list(session=session, campaign_id=campaign_id)
        assert lst is not None  # validating means a pending list
        missing = list_status(session=session, target_list=lst).missing_signoffs
        return f"valider la liste n° {lst.id} avant le {_d(lst.deadline)}" + (
            f" (échelons à signer : {', '.join(missing)})" if missing else " puis l'approuver"
        )
    if state == "running":
        until = f" jusqu'au {_d(d.dates.end)}" if d and d.dates.end else ""
        return f"le prochain passage quotidien planifie et envoie les actions dues{until}"
    if d is not None and d.validation.required:
        return "le prochain ciblage préparera la liste à valider par les échelons"
    return "le prochain ciblage admettra les premiers membres ; les envois suivront"


def _overview(
    session: Session, campaign_id: str, d: CampaignDefinition | None, today: date
) -> Overview:
    row = session.get(Campaign, campaign_id)
    state = campaign_state(session=session, campaign_id=campaign_id, definition=d, today=today)
    versions: list[CampaignVersion] = campaign_versions(session=session, campaign_id=campaign_id)
    return Overview(
        id=campaign_id,
        name=d.name if d else (row.name if row else campaign_id),
        state=state,
        start=d.dates.start if d else None,
        end=d.dates.end if d else None,
        members=_counts(session, Member, campaign_id) if row else {},
        actions=_counts(session, Action, campaign_id) if row else {},
        version=versions[-1].version if versions else None,
        versions=[(v.version, v.effective_on, v.definition_sha256[:12]) for v in versions],
        authors={v.version: v.recorded_by for v in versions},
        by_version=_by_version(session, campaign_id) if row else {},
        next_step=_next_step(session, campaign_id, state, d, row),
    )


def _draft(b: BrokenDraft) -> Overview:
    return Overview(
        id=b.id or b.folder.name,
        name=b.folder.name,
        state="draft",
        start=None,
        end=None,
        next_step="corriger la définition (relance campaigns check " + str(b.folder) + ")",
        error=b.error,
    )


def _console_draft(d: CampaignDraft) -> Overview:
    return Overview(
        id=d.campaign_id,
        name=d.campaign_id,
        state="draft",
        start=None,
        end=None,
        next_step="compléter le brouillon, le vérifier puis le marquer prêt (console, Campagnes)",
        console_draft=True,
    )


def _console_drafts(session: Session) -> list[CampaignDraft]:
    return list(
        session.exec(
            select(CampaignDraft)
            .where(CampaignDraft.state == "draft")
            .order_by(col(CampaignDraft.campaign_id))
        ).all()
    )


def campaign_overview(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    definition: CampaignDefinition | None = None,
    today: date | None = None,
) -> Overview:
    """One campaign: its state, dates, counts, versions and next step; the viewing is audited."""
    today = today or paris_today()
    listing = list_campaigns() if definition is None else None
    if listing is not None:
        definition = next((d for d in listing if d.id == campaign_id), None)
        if definition is None:
            draft = next((b for b in listing.drafts if b.id == campaign_id), None)
            if draft is not None:
                return _draft(draft)
            console = session.get(CampaignDraft, campaign_id)
            if console is not None and console.state == "draft":
                return _console_draft(console)
            if session.get(Campaign, campaign_id) is None:
                raise LifecycleError(f"{campaign_id} : campagne inconnue")
    out = _overview(session, campaign_id, definition, today)
    record(
        session=session,
        actor=actor,
        action="view_campaign",
        target=campaign_id,
        detail={"state": out.state},
    )
    return out


def campaign_overviews(
    *, session: Session, actor: str, today: date | None = None
) -> list[Overview]:
    """Every campaign: the shipped folders (drafts included) and those only in the ledger."""
    today = today or paris_today()
    listing = list_campaigns()
    known = {d.id: d for d in listing}
    ids = sorted(set(known) | {cid for (cid,) in session.execute(select(Campaign.id))})
    out = [_overview(session, cid, known.get(cid), today) for cid in ids]
    out += [_draft(b) for b in listing.drafts if b.id not in known]
    out += [_console_draft(d) for d in _console_drafts(session) if d.campaign_id not in known]
    record(
        session=session,
        actor=actor,
        action="view_campaigns",
        target="campaigns",
        detail={"campaigns": len(out)},
    )
    return out
