"""The regional lead's page: enrolments against objectives, the funnel, the effect; exports."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from campaigns.app.objectives import import_objectives, set_objective
from campaigns.clock import paris_today
from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.audit import record
from campaigns.ledger.models import User
from campaigns.measurement.dashboard import (
    COLUMNS,
    ObjectiveError,
    ResultRow,
    cumulative_enrolments,
    funnel,
    objective_history,
    results,
)
from campaigns.measurement.effect import holdout_needed
from campaigns.measurement.effect_report import effect_report
from console.web.deps import CSRF, CampaignManager, Forbidden, Now, SessionDep, render, roles

READERS = ("echelon_lead", "regional_lead", "campaign_manager", "supervisor")
Reader = Annotated[User, roles(*READERS)]

router = APIRouter()


def _rows(s: Session, cid: str, user: User, today: date) -> tuple[list[ResultRow], ResultRow]:
    rows, total = results(session=s, definition=campaign_by_id(cid).definition, today=today)
    if user.role == "echelon_lead":
        mine = [r for r in rows if r.echelon == user.echelon]
        return mine, mine[0] if mine else total
    return rows, total


def _columns(cid: str) -> list[tuple[str, str]]:
    """The result columns, the goal column named in the campaign's own words."""
    d = campaign_by_id(cid).definition
    goal = d.labels.goal
    rate = d.objectives.kind == "rate"  # the rate column only where objectives are rates
    return [
        (k, goal if k == "enrolled" else label)
        for k, label in COLUMNS
        if rate or k != "objective_rate"
    ]


def _cell(v: object) -> object:
    return round(v, 1) if isinstance(v, float) else ("" if v is None else v)


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

    d = campaign_by_id(cid).definition
    rows, total = _rows(s, cid, user, paris_today(now))
    scope = user.echelon if user.role == "echelon_lead" else None
    effects = effect_report(
        session=s,
        campaign_id=cid,
        window_days=d.goal.attribution_window_days,
        goal=d.labels.goal,
    )
    if scope is not None:
        effects = [e for e in effects if e.echelon == scope]
    series = cumulative_enrolments(session=s, campaign_id=cid, echelon=scope)
    total_u = effects[-1].uplift if effects else None
    base = (total_u.rate_holdout or total_u.rate_contacted or 0.05) if total_u else 0.05
    power = {
        "baseline": base,
        "uplift": 0.02,
        "needed": holdout_needed(
            baseline_rate=min(base, 0.9), uplift_to_detect=0.02, holdout_share=d.holdout.share
        ),
        "have": total_u.holdout if total_u else 0,
    }
    record(session=s, actor=user.username, action="view_results", target=cid)
    return render(
        request,
        "results.html",
        user,
        cid=cid,
        d=d,
        rows=rows,
        total=total,
        columns=_columns(cid),
        funnel=funnel(total, d.labels.goal),
        effects=effects,
        history=objective_history(session=s, campaign_id=cid)[:30],
        chart_attainment=attainment_chart(rows),
        chart_cumulative=cumulative_chart(series, total.objective, goal=d.labels.goal),
        chart_uplift=uplift_chart(effects),
        message=request.query_params.get("m"),
        power=power,
    )


@router.get("/campaigns/{cid}/results.csv")
def results_csv(
    cid: str,
    user: Reader,
    s: SessionDep,
    now: Now,
) -> Response:
    rows, total = _rows(s, cid, user, paris_today(now))
    buf = io.StringIO()
    w = csv.writer(buf)
    columns = _columns(cid)
    w.writerow([label for _, label in columns])
    for r in [*rows, total] if user.role != "echelon_lead" else rows:
        w.writerow([_cell(getattr(r, k)) for k, _ in columns])
    record(session=s, actor=user.username, action="export_csv", target=cid)
    return Response(
        buf.getvalue().encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{cid}-{paris_today(now)}.csv"'},
    )


@router.get("/campaigns/{cid}/results.xlsx")
def results_xlsx(
    cid: str,
    user: Reader,
    s: SessionDep,
    now: Now,
) -> Response:
    from openpyxl import Workbook

    rows, total = _rows(s, cid, user, paris_today(now))
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "résultats par échelon"
    columns = _columns(cid)
    ws.append([label for _, label in columns])
    for r in [*rows, total] if user.role != "echelon_lead" else rows:
        ws.append([_cell(getattr(r, k)) for k, _ in columns])
    out = io.BytesIO()
    wb.save(out)
    record(session=s, actor=user.username, action="export_xlsx", target=cid)
    return Response(
        out.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{cid}-{paris_today(now)}.xlsx"'},
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
        raise Forbidden(f"no échelon {echelon} in this campaign")
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
    text = (await file.read()).decode("utf-8", errors="replace")
    try:
        n = import_objectives(
            session=s, actor=user.username, campaign_id=cid, text=text, filename=file.filename
        )
    except ObjectiveError as e:
        return _back(cid, f"{file.filename}: {e} — rien n'a été modifié")
    return _back(cid, f"{n} objectifs importés de {file.filename}")
