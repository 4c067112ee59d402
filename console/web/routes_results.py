"""The regional lead's page: enrolments against objectives, the funnel, the effect; exports."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from campaigns.app.objectives import decode_csv, import_objectives, set_objective
from campaigns.app.results import LeadResults, lead_results
from campaigns.clock import paris_today
from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.models import User
from campaigns.measurement.dashboard import ObjectiveError
from campaigns.measurement.period import PRESETS, Period, PeriodError, parse_period
from console.web.deps import (
    CSRF,
    TEMPLATES,
    CampaignManager,
    Forbidden,
    Now,
    SessionDep,
    render,
    roles,
)
from console.web.exports import french_number, paris_time, results_csv, results_xlsx

READERS = ("echelon_lead", "regional_lead", "campaign_manager", "supervisor")
Reader = Annotated[User, roles(*READERS)]

router = APIRouter()
TEMPLATES.env.filters["frnum"] = french_number
TEMPLATES.env.filters["parisdt"] = paris_time


def _period(request: Request, today: date) -> tuple[Period, str | None]:
    """The period in the URL, or since the launch with the French reason it was refused."""
    q = request.query_params
    try:
        return parse_period(
            preset=q.get("periode"), since=q.get("du"), until=q.get("au"), today=today
        ), None
    except PeriodError as e:
        return Period(since=None, until=today), str(e)


def _figures(
    request: Request, s: Session, cid: str, user: User, now: date, action: str
) -> tuple[LeadResults, str | None]:
    period, error = _period(request, now)
    campaign_by_id(cid)  # an unknown campaign is a 404 before anything is counted
    scope = user.echelon if user.role == "echelon_lead" else None
    res = lead_results(
        session=s, actor=user.username, campaign_id=cid, period=period, echelon=scope, action=action
    )
    return res, error


def _filename(cid: str, res: LeadResults, ext: str) -> str:
    since = f"{res.period.since.isoformat()}-" if res.period.since else ""
    return f'attachment; filename="{cid}-{since}{res.period.until.isoformat()}.{ext}"'


@router.get("/campaigns/{cid}/results", response_class=HTMLResponse)
def results_page(
    request: Request,
    cid: str,
    user: Reader,
    s: SessionDep,
    now: Now,
) -> HTMLResponse:
    # matplotlib is heavy: loaded with the first results page, not with the console.
    from console.web.charts import attainment_chart, cumulative_chart, uplift_chart

    res, error = _figures(request, s, cid, user, paris_today(now), "view_results")
    d = res.definition
    page = render(
        request,
        "results.html",
        user,
        cid=cid,
        d=d,
        table=res.table(),
        columns=res.columns,
        definitions=res.definitions,
        funnel=res.funnel,
        effects=res.effects,
        history=res.history,
        chart_attainment=attainment_chart(res.rows),
        chart_cumulative=cumulative_chart(res.series, res.total.objective, goal=d.labels.goal),
        chart_uplift=uplift_chart(res.effects),
        message=request.query_params.get("m"),
        power=res.power,
        period=res.period,
        period_error=error,
        presets=PRESETS,
        query=res.period.query(),
    )
    if error:
        page.status_code = 400
    return page


@router.get("/campaigns/{cid}/results.csv")
def results_csv_export(
    request: Request,
    cid: str,
    user: Reader,
    s: SessionDep,
    now: Now,
) -> Response:
    res, error = _figures(request, s, cid, user, paris_today(now), "export_csv")
    if error:
        return Response(error, status_code=400, media_type="text/plain; charset=utf-8")
    return Response(
        results_csv(res),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _filename(cid, res, "csv")},
    )


@router.get("/campaigns/{cid}/results.xlsx")
def results_xlsx_export(
    request: Request,
    cid: str,
    user: Reader,
    s: SessionDep,
    now: Now,
) -> Response:
    res, error = _figures(request, s, cid, user, paris_today(now), "export_xlsx")
    if error:
        return Response(error, status_code=400, media_type="text/plain; charset=utf-8")
    return Response(
        results_xlsx(res),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _filename(cid, res, "xlsx")},
    )


def _back(cid: str, message: str) -> Response:
    return RedirectResponse(f"/campaigns/{cid}/results?m={quote(message)}", status_code=303)


@router.post("/campaigns/{cid}/objectives", dependencies=CSRF)
def objectives(
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    echelon: str = Form(...),
    objective: int = Form(...),
    note: str = Form(""),
) -> Response:
    if not campaign_by_id(cid).definition.objectives.known(echelon):
        raise Forbidden(f"pas d'échelon {echelon} dans cette campagne")
    try:
        set_objective(
            session=s,
            actor=user.username,
            campaign_id=cid,
            echelon=echelon,
            objective=objective,
            note=note or None,
        )
    except ObjectiveError as e:
        return _back(cid, str(e))
    return _back(cid, f"objectif de l'échelon {echelon} : {objective}")


@router.post("/campaigns/{cid}/objectives/import", dependencies=CSRF)
async def objectives_import(
    cid: str,
    user: CampaignManager,
    s: SessionDep,
    file: UploadFile = File(...),
) -> Response:
    text = decode_csv(await file.read())
    try:
        n = import_objectives(
            session=s, actor=user.username, campaign_id=cid, text=text, filename=file.filename
        )
    except ObjectiveError as e:
        return _back(cid, f"{file.filename}: {e} — rien n'a été modifié")
    return _back(cid, f"{n} objectifs importés de {file.filename}")
