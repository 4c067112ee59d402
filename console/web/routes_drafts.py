"""The campaign managers' pages: a campaign's page, its pause/resume/end, drafts and versions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaigns.app import drafts as uc
from campaigns.app import lifecycle
from campaigns.clock import paris_today
from campaigns.definition.catalog import list_campaigns
from campaigns.definition.files import YAML
from campaigns.definition.model import DefinitionError
from campaigns.ledger.models import CampaignDraft
from console.web.deps import CSRF, CampaignManager, SchedulerDep, SessionDep, render
from console.web.routes_runs import schedule_facts

router = APIRouter()
MAX_UPLOAD = 512 * 1024  # a campaign.yaml or a template is a few kilobytes


def _to(path: str, message: str = "") -> Response:
    return RedirectResponse(path + (f"?m={quote(message)}" if message else ""), status_code=303)


def _shipped() -> list[tuple[str, str]]:
    try:
        return [(d.id, d.name) for d in list_campaigns()]
    except DefinitionError:
        return []


@router.get("/campaigns/new", response_class=HTMLResponse)
def new_draft_page(request: Request, user: CampaignManager) -> HTMLResponse:
    return render(request, "draft_new.html", user, shipped=_shipped(), error=None, form={})


@router.post("/campaigns/new", dependencies=CSRF)
def new_draft(
    request: Request,
    user: CampaignManager,
    s: SessionDep,
    campaign_id: str = Form(...),
    name: str = Form(""),
    origin: str = Form(""),
) -> Response:
    try:
        uc.create_draft(
            session=s,
            actor=user.username,
            campaign_id=campaign_id.strip(),
            name=name,
            origin=origin,
            now=request.app.state.clock(),
        )
    except uc.DraftError as e:
        form = {"campaign_id": campaign_id, "name": name, "origin": origin}
        page = render(request, "draft_new.html", user, shipped=_shipped(), error=str(e), form=form)
        page.status_code = 400
        return page
    return _to(f"/drafts/{campaign_id.strip()}", "brouillon créé")


def _editor(
    request: Request,
    user: CampaignManager,
    s: SessionDep,
    cid: str,
    *,
    problems: list[str] | None = None,
    checked: bool = False,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    draft = s.get(CampaignDraft, cid)
    if draft is None:
        raise _unknown(cid)
    page = render(
        request,
        "draft.html",
        user,
        draft=draft,
        files=uc.draft_files(session=s, campaign_id=cid),
        problems=problems or [],
        checked=checked,
        error=error,
        message=request.query_params.get("m"),
    )
    page.status_code = status
    return page


def _unknown(cid: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{cid} : brouillon inconnu")


@router.get("/drafts/{cid}", response_class=HTMLResponse)
def draft_page(request: Request, cid: str, user: CampaignManager, s: SessionDep) -> HTMLResponse:
    return _editor(request, user, s, cid)


@router.post("/drafts/{cid}/save", dependencies=CSRF)
def save_draft(
    request: Request,
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    names: Annotated[list[str], Form()],
    texts: Annotated[list[str], Form()],
    then: str = Form("save"),
) -> Response:
    if len(names) != len(texts):
        return _editor(request, user, s, cid, error="formulaire incomplet", status=400)
    try:
        uc.save_draft_files(
            session=s,
            actor=user.username,
            campaign_id=cid,
            files=dict(zip(names, texts, strict=True)),
            now=request.app.state.clock(),
        )
        if then == "check":
            checked = uc.check_draft(session=s, actor=user.username, campaign_id=cid)
            return _editor(request, user, s, cid, problems=checked.problems, checked=True)
    except uc.DraftError as e:
        return _editor(request, user, s, cid, error=str(e), problems=e.problems, status=400)
    return _to(f"/drafts/{cid}", "brouillon enregistré")


@router.post("/drafts/{cid}/upload", dependencies=CSRF)
def upload_draft_file(
    request: Request,
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    upload: Annotated[UploadFile, File()],
) -> Response:
    filename = (upload.filename or "").rsplit("/", 1)[-1]
    name = YAML if filename.endswith((".yaml", ".yml")) else f"templates/{filename}"
    raw = upload.file.read(MAX_UPLOAD + 1)
    error = None
    if len(raw) > MAX_UPLOAD:
        error = f"{filename} : fichier trop gros (plus de {MAX_UPLOAD // 1024} Ko)"
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            error = f"{filename} : pas en UTF-8 ; enregistrez le fichier en UTF-8"
    if error is not None:
        return _editor(request, user, s, cid, error=error, status=400)
    try:
        uc.save_draft_files(
            session=s,
            actor=user.username,
            campaign_id=cid,
            files={name: text},
            now=request.app.state.clock(),
        )
    except uc.DraftError as e:
        return _editor(request, user, s, cid, error=str(e), problems=e.problems, status=400)
    return _to(f"/drafts/{cid}", f"{name} enregistré")


@router.post("/drafts/{cid}/ready", dependencies=CSRF)
def ready_draft(request: Request, cid: str, user: CampaignManager, s: SessionDep) -> Response:
    try:
        uc.mark_ready(
            session=s, actor=user.username, campaign_id=cid, now=request.app.state.clock()
        )
    except uc.DraftError as e:
        return _editor(request, user, s, cid, error=str(e), problems=e.problems, status=400)
    return _to(f"/campaigns/{cid}", "campagne prête")


@router.get("/campaigns/{cid}", response_class=HTMLResponse)
def campaign_page(
    request: Request, cid: str, user: CampaignManager, s: SessionDep, scheduler: SchedulerDep
) -> Response:
    today = paris_today(request.app.state.clock())
    try:
        v = lifecycle.campaign_overview(
            session=s, actor=user.username, campaign_id=cid, today=today
        )
    except lifecycle.LifecycleError as e:
        raise _unknown_campaign(str(e)) from None
    if v.console_draft:
        return _to(f"/drafts/{cid}")
    sched = schedule_facts(scheduler, [cid], today, runs=True)
    v = replace(v, next_run=sched.next_runs.get(cid))
    return render(
        request, "campaign.html", user, v=v, sched=sched, message=request.query_params.get("m")
    )


def _unknown_campaign(why: str) -> HTTPException:
    return HTTPException(status_code=404, detail=why)


@router.post("/campaigns/{cid}/pause", dependencies=CSRF)
def pause(
    request: Request, cid: str, user: CampaignManager, s: SessionDep, scheduler: SchedulerDep
) -> Response:
    try:
        lifecycle.pause_campaign(
            session=s,
            actor=user.username,
            campaign_id=cid,
            scheduler=scheduler,
            now=request.app.state.clock(),
        )
    except lifecycle.LifecycleError as e:
        return _to(f"/campaigns/{cid}", str(e))
    return _to(f"/campaigns/{cid}", "campagne mise en pause")


@router.post("/campaigns/{cid}/resume", dependencies=CSRF)
def resume(
    request: Request, cid: str, user: CampaignManager, s: SessionDep, scheduler: SchedulerDep
) -> Response:
    try:
        lifecycle.resume_campaign(
            session=s,
            actor=user.username,
            campaign_id=cid,
            scheduler=scheduler,
            now=request.app.state.clock(),
        )
    except lifecycle.LifecycleError as e:
        return _to(f"/campaigns/{cid}", str(e))
    return _to(f"/campaigns/{cid}", "campagne reprise")


@router.post("/campaigns/{cid}/end", dependencies=CSRF)
def end(
    request: Request,
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    scheduler: SchedulerDep,
    reason: str = Form(""),
) -> Response:
    if not reason.strip():
        return _to(f"/campaigns/{cid}", "terminer une campagne demande un motif")
    try:
        counts = lifecycle.end_campaign(
            session=s,
            actor=user.username,
            campaign_id=cid,
            now=request.app.state.clock(),
            reason=reason.strip(),
            scheduler=scheduler,
        )
    except lifecycle.LifecycleError as e:
        return _to(f"/campaigns/{cid}", str(e))
    cancelled = counts.get("cancelled_campaign_ended", 0)
    return _to(f"/campaigns/{cid}", f"campagne terminée ({cancelled} action(s) annulée(s))")


def _version_form(
    request: Request,
    user: CampaignManager,
    cid: str,
    files: dict[str, str],
    *,
    effective_on: date,
    error: str | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    page = render(
        request,
        "version_new.html",
        user,
        cid=cid,
        files=files,
        effective_on=effective_on,
        error=error,
        problems=problems or [],
    )
    page.status_code = status
    return page


@router.get("/campaigns/{cid}/edit", response_class=HTMLResponse)
def version_page(request: Request, cid: str, user: CampaignManager, s: SessionDep) -> Response:
    try:
        files = uc.current_files(session=s, campaign_id=cid)
    except DefinitionError:
        raise _unknown_campaign(f"{cid} : campagne inconnue") from None
    tomorrow = paris_today(request.app.state.clock()) + timedelta(days=1)
    return _version_form(request, user, cid, files, effective_on=tomorrow)


@router.post("/campaigns/{cid}/versions", dependencies=CSRF)
def new_version(
    request: Request,
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    names: Annotated[list[str], Form()],
    texts: Annotated[list[str], Form()],
    effective_on: str = Form(...),
) -> Response:
    files = dict(zip(names, texts, strict=False))
    tomorrow = paris_today(request.app.state.clock()) + timedelta(days=1)
    try:
        day = date.fromisoformat(effective_on)
    except ValueError:
        return _version_form(
            request,
            user,
            cid,
            files,
            effective_on=tomorrow,
            error=f"« {effective_on} » : date d'effet illisible (attendu AAAA-MM-JJ)",
            status=400,
        )
    try:
        v = uc.new_version(
            session=s,
            actor=user.username,
            campaign_id=cid,
            files=files,
            effective_on=day,
            now=request.app.state.clock(),
        )
    except uc.DraftError as e:
        return _version_form(
            request,
            user,
            cid,
            files,
            effective_on=day,
            error=str(e),
            problems=e.problems,
            status=400,
        )
    return _to(
        f"/campaigns/{cid}", f"version {v.version} enregistrée, en vigueur le {day:%d/%m/%Y}"
    )
