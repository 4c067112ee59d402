"""Campaign pages: the lists échelons review before launch, and a person's page."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaigns.app import validation as uc
from campaigns.app.lifecycle import campaign_overviews
from campaigns.app.oppositions import record_member_opposition
from campaigns.app.people import member_explanation
from campaigns.calls.card import holds_call_for
from campaigns.cascade.review import EXCLUSION_REASONS, ValidationError, list_status, pending_list
from campaigns.clock import paris_today
from campaigns.definition.catalog import BrokenDraft, campaign_by_id, list_campaigns
from campaigns.definition.model import DefinitionError
from campaigns.ledger.audit import record
from campaigns.ledger.members import member_history
from campaigns.ledger.models import Member, Person, User
from campaigns.ledger.registry import registered_campaigns
from campaigns.policy.decision import OPPOSITION_CANALS
from console.web.deps import (
    CSRF,
    CampaignManager,
    Forbidden,
    FormRowId,
    RowId,
    SchedulerDep,
    SessionDep,
    render,
    roles,
)
from console.web.routes_runs import launched_message, schedule_facts

REVIEWERS = ("echelon_lead", "campaign_manager")
Reviewer = Annotated[User, roles(*REVIEWERS)]

router = APIRouter()


def _scope(user: User) -> str | None:
    """The échelon a user is limited to (None: every échelon)."""
    return user.echelon if user.role == "echelon_lead" else None


def _back(cid: str, echelon: str | None, message: str) -> Response:
    q = f"?m={quote(message)}" + (f"&echelon={echelon}" if echelon else "")
    return RedirectResponse(f"/campaigns/{cid}/validation{q}", status_code=303)


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(
    request: Request,
    user: Annotated[User, roles(*REVIEWERS, "supervisor", "regional_lead")],
    s: SessionDep,
    scheduler: SchedulerDep,
) -> HTMLResponse:
    if user.role in ("campaign_manager", "admin"):
        today = paris_today(request.app.state.clock())
        try:
            views, error = campaign_overviews(session=s, actor=user.username, today=today), None
        except DefinitionError as e:  # two folders with one id: said, not a server error
            views, error = [], str(e)
        live = [v.id for v in views if v.state not in ("draft", "ended")]
        sched = schedule_facts(scheduler, live, today) if live else None
        if sched is not None:
            views = [replace(v, next_run=sched.next_runs.get(v.id)) for v in views]
        return render(
            request,
            "campaign_list.html",
            user,
            views=views,
            sched_warning=sched.warning if sched else None,
            error=error,
            message=request.query_params.get("m"),
        )
    rows = []
    for c in registered_campaigns(session=s):
        rows.append((c, pending_list(session=s, campaign_id=c.id)))
    try:
        drafts = list_campaigns().drafts
    except DefinitionError as e:
        # Two folders with one id: shown here, the registered campaigns stay listed.
        drafts = [BrokenDraft(folder=Path(), id=None, error=str(e))]
    return render(request, "campaigns.html", user, rows=rows, drafts=drafts)


@router.get("/campaigns/{cid}/validation", response_class=HTMLResponse)
def validation_page(
    request: Request,
    cid: str,
    user: Reviewer,
    s: SessionDep,
    echelon: str | None = None,
) -> HTMLResponse:
    lst = pending_list(session=s, campaign_id=cid)
    scope = _scope(user)
    if scope is not None:
        if echelon not in (None, scope):
            raise Forbidden("an échelon lead sees only the list of their échelon")
        echelon = scope
    status = list_status(session=s, target_list=lst) if lst else None
    people: list[Any] = []
    if lst is not None and echelon is not None:
        people = uc.echelon_people(session=s, actor=user.username, campaign_id=cid, echelon=echelon)
    d = campaign_by_id(cid).definition
    labels = d.presentation.gap_labels
    return render(
        request,
        "validation.html",
        user,
        cid=cid,
        lst=lst,
        status=status,
        echelon=echelon,
        people=people,
        reasons=EXCLUSION_REASONS,
        gap_labels=labels,
        anchor_label=d.labels.anchor,
        message=request.query_params.get("m"),
    )


@router.post("/campaigns/{cid}/validation/exclude", dependencies=CSRF)
def exclude_route(
    cid: str,
    member_id: FormRowId,
    user: Reviewer,
    s: SessionDep,
    reason: str = Form(...),
    note: str = Form(""),
) -> Response:
    m = s.get(Member, member_id)
    echelon = m.echelon if m else None
    try:
        uc.exclude_member(
            session=s,
            actor=user.username,
            campaign_id=cid,
            member_id=member_id,
            reason=reason,
            note=note or None,
            scope=_scope(user),
        )
    except PermissionError as e:
        raise Forbidden(str(e)) from None
    except ValidationError as e:
        return _back(cid, echelon, str(e))
    return _back(cid, echelon, f"personne {member_id} retirée de la liste")


@router.post("/campaigns/{cid}/validation/revoke", dependencies=CSRF)
def revoke_route(cid: str, member_id: FormRowId, user: Reviewer, s: SessionDep) -> Response:
    m = s.get(Member, member_id)
    echelon = m.echelon if m else None
    try:
        done = uc.revoke_exclusion(
            session=s,
            actor=user.username,
            campaign_id=cid,
            member_id=member_id,
            scope=_scope(user),
        )
    except PermissionError as e:
        raise Forbidden(str(e)) from None
    except ValidationError as e:
        return _back(cid, echelon, str(e))
    message = f"personne {member_id} remise sur la liste" if done else "rien à annuler"
    return _back(cid, echelon, message)


@router.post("/campaigns/{cid}/validation/sign-off", dependencies=CSRF)
def sign_off_route(
    cid: str, user: Reviewer, s: SessionDep, echelon: str = Form(...), reason: str = Form("")
) -> Response:
    try:
        uc.sign_off_echelon(
            session=s,
            actor=user.username,
            campaign_id=cid,
            echelon=echelon,
            scope=_scope(user),
            role=user.role,
            own_echelon=user.echelon,
            reason=reason,
        )
    except PermissionError as e:
        raise Forbidden(str(e)) from None
    except ValidationError as e:
        return _back(cid, echelon, str(e))
    return _back(cid, echelon, f"liste de l'échelon {echelon} validée")


@router.post("/campaigns/{cid}/validation/reopen", dependencies=CSRF)
def reopen_route(
    cid: str, user: Reviewer, s: SessionDep, echelon: str = Form(...), reason: str = Form("")
) -> Response:
    try:
        done = uc.reopen_echelon(
            session=s,
            actor=user.username,
            campaign_id=cid,
            echelon=echelon,
            role=user.role,
            own_echelon=user.echelon,
            reason=reason,
        )
    except PermissionError as e:
        raise Forbidden(str(e)) from None
    except ValidationError as e:
        return _back(cid, echelon, str(e))
    return _back(
        cid, echelon, f"liste de l'échelon {echelon} rouverte" if done else "rien à rouvrir"
    )


@router.post("/campaigns/{cid}/validation/decide", dependencies=CSRF)
def decide_route(
    request: Request,
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    scheduler: SchedulerDep,
    decision: str = Form(...),
    reason: str = Form(""),
) -> Response:
    # Prefect loads only when a list is decided, not with every page of the console.
    from flows.validation import resume_with_decision

    try:
        done = uc.decide_list(
            session=s,
            actor=user.username,
            campaign_id=cid,
            decision=decision,
            reason=reason,
            today=paris_today(request.app.state.clock()),
        )
    except ValidationError as e:
        return _back(cid, None, str(e))
    s.commit()
    resume_with_decision(done.flow_run_id, done.as_input(actor=user.username, reason=reason))
    if done.decision == "approve":
        launched = sum(c["launched"] for c in done.counts.values())
        # The approval is committed: the day's run may start at once and read it.
        started = launched_message(
            s=s, user=user, cid=cid, scheduler=scheduler, now=request.app.state.clock()
        )
        return _back(cid, None, f"liste lancée : {launched} personnes ; {started}")
    return _back(cid, None, "liste refusée")


@router.post("/campaigns/{cid}/members/{mid}/opposition", dependencies=CSRF)
def opposition_route(
    request: Request,
    cid: str,
    mid: RowId,
    user: Annotated[User, roles("adviser", "supervisor", "campaign_manager")],
    s: SessionDep,
    canal: str = Form(...),
) -> Response:
    m = s.get(Member, mid)
    if m is None or m.campaign_id != cid:
        raise Forbidden("no such person in this campaign")
    now = request.app.state.clock()
    if user.role == "adviser" and not holds_call_for(
        session=s, member_id=mid, adviser=user.username, now=now
    ):
        raise Forbidden("an adviser records oppositions only for the person they are calling")
    if canal not in OPPOSITION_CANALS:
        raise Forbidden("unknown channel")
    record_member_opposition(
        session=s,
        actor=user.username,
        campaign_id=cid,
        member_id=mid,
        canal=canal,
        today=paris_today(now),  # effective at once
    )
    if user.role == "adviser":  # the call may be closed by the opposition: back to the list
        return RedirectResponse("/calls", status_code=303)
    return RedirectResponse(f"/campaigns/{cid}/members/{mid}", status_code=303)


@router.get("/campaigns/{cid}/members/{mid}", response_class=HTMLResponse)
def person_page(
    request: Request,
    cid: str,
    mid: RowId,
    user: Annotated[User, roles("adviser", "supervisor", *REVIEWERS)],
    s: SessionDep,
) -> HTMLResponse:
    m = s.get(Member, mid)
    if m is None or m.campaign_id != cid:
        raise Forbidden("no such person in this campaign")
    scope = _scope(user)
    if scope is not None and m.echelon != scope:
        raise Forbidden("this person belongs to another échelon")
    if user.role == "adviser" and not holds_call_for(
        session=s, member_id=mid, adviser=user.username, now=request.app.state.clock()
    ):
        raise Forbidden("an adviser sees only the person they are calling")
    p = s.get(Person, m.person_id)
    assert p is not None
    events, actions = member_history(session=s, member_id=mid)
    explanation, explain_error = None, None
    try:
        explanation = member_explanation(
            session=s, member_id=mid, extract=request.app.state.settings.resolved_extract_dir
        )
    except Exception as e:  # the page still shows the ledger's facts
        explain_error = f"explication indisponible : {e}"
    via = {"via": "recherche"} if request.query_params.get("via") == "recherche" else None
    record(
        session=s,
        actor=user.username,
        action="view_person",
        target=f"{cid}/member/{mid}",
        detail=via,
    )
    return render(
        request,
        "person.html",
        user,
        cid=cid,
        m=m,
        p=p,
        events=events,
        actions=actions,
        x=explanation,
        explain_error=explain_error,
        anchor_label=campaign_by_id(cid).definition.labels.anchor,
    )
