"""The regional lead's page: enrolments against objectives, the funnel, the effect; exports."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

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
    parse_objectives_csv,
    results,
    set_objectives,
)
from campaigns.measurement.effect import holdout_needed
from campaigns.measurement.effect_report import effect_report
from console.web.app import Forbidden, check_csrf, clock, db, render, roles

READERS = ("echelon_lead", "regional_lead", "campaign_manager", "supervisor")


def _rows(s: Session, cid: str, user: User, today: date) -> tuple[list[ResultRow], ResultRow]:
    rows, total = results(session=s, definition=campaign_by_id(cid).definition, today=today)
    if user.role == "echelon_lead":
        mine = [r for r in rows if r.echelon == user.echelon]
        return mine, mine[0] if mine else total
    return rows, total


def _cell(v: object) -> object:
    return round(v, 1) if isinstance(v, float) else ("" if v is None else v)


def add_routes(app: FastAPI) -> None:
    """Register the results pages."""

    @app.get("/campaigns/{cid}/results", response_class=HTMLResponse)
    def results_page(
        request: Request,
        cid: str,
        user: User = roles(*READERS),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> HTMLResponse:
        from console.web.charts import attainment_chart, cumulative_chart, uplift_chart

        d = campaign_by_id(cid).definition
        rows, total = _rows(s, cid, user, paris_today(now))
        scope = user.echelon if user.role == "echelon_lead" else None
        effects = effect_report(
            session=s,
            campaign_id=cid,
            programme=d.goal.programme,
            window_days=d.goal.attribution_window_days,
        )
        if scope is not None:
            effects = [e for e in effects if e.echelon == scope]
        series = cumulative_enrolments(
            session=s, campaign_id=cid, programme=d.goal.programme, echelon=scope
        )
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
            columns=COLUMNS,
            funnel=funnel(total),
            effects=effects,
            history=objective_history(session=s, campaign_id=cid)[:30],
            chart_attainment=attainment_chart(rows),
            chart_cumulative=cumulative_chart(series, total.objective),
            chart_uplift=uplift_chart(effects),
            message=request.query_params.get("m"),
            power=power,
        )

    @app.get("/campaigns/{cid}/results.csv")
    def results_csv(
        cid: str,
        user: User = roles(*READERS),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> Response:
        rows, total = _rows(s, cid, user, paris_today(now))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([label for _, label in COLUMNS])
        for r in [*rows, total] if user.role != "echelon_lead" else rows:
            w.writerow([_cell(getattr(r, k)) for k, _ in COLUMNS])
        record(session=s, actor=user.username, action="export_csv", target=cid)
        return Response(
            buf.getvalue().encode("utf-8-sig"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{cid}-{paris_today(now)}.csv"'},
        )

    @app.get("/campaigns/{cid}/results.xlsx")
    def results_xlsx(
        cid: str,
        user: User = roles(*READERS),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> Response:
        from openpyxl import Workbook

        rows, total = _rows(s, cid, user, paris_today(now))
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "adhésions par échelon"
        ws.append([label for _, label in COLUMNS])
        for r in [*rows, total] if user.role != "echelon_lead" else rows:
            ws.append([_cell(getattr(r, k)) for k, _ in COLUMNS])
        out = io.BytesIO()
        wb.save(out)
        record(session=s, actor=user.username, action="export_xlsx", target=cid)
        return Response(
            out.getvalue(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={
                "Content-Disposition": f'attachment; filename="{cid}-{paris_today(now)}.xlsx"'
            },
        )

    def _back(cid: str, message: str) -> Response:
        from urllib.parse import quote

        return RedirectResponse(f"/campaigns/{cid}/results?m={quote(message)}", status_code=303)

    @app.post("/campaigns/{cid}/objectives", dependencies=[Depends(check_csrf)])
    def objectives(
        cid: str,
        echelon: str = Form(...),
        objective: int = Form(...),
        note: str = Form(""),
        user: User = roles("campaign_manager"),
        s: Session = Depends(db),
    ) -> Response:
        if echelon not in campaign_by_id(cid).definition.objectives:
            raise Forbidden(f"no échelon {echelon} in this campaign")
        try:
            set_objectives(
                session=s,
                campaign_id=cid,
                targets={echelon: objective},
                by=user.username,
                note=note or None,
            )
        except ObjectiveError as e:
            return _back(cid, str(e))
        record(
            session=s,
            actor=user.username,
            action="set_objective",
            target=f"{cid}/{echelon}",
            detail={"objective": objective},
        )
        return _back(cid, f"objectif de l'échelon {echelon} : {objective}")

    @app.post("/campaigns/{cid}/objectives/import", dependencies=[Depends(check_csrf)])
    async def objectives_import(
        cid: str,
        file: UploadFile = File(...),
        user: User = roles("campaign_manager"),
        s: Session = Depends(db),
    ) -> Response:
        text = (await file.read()).decode("utf-8", errors="replace")
        known = set(campaign_by_id(cid).definition.objectives)
        try:
            targets = parse_objectives_csv(text, known)
        except ObjectiveError as e:
            return _back(cid, f"{file.filename}: {e} — rien n'a été modifié")
        set_objectives(
            session=s,
            campaign_id=cid,
            targets=targets,
            by=user.username,
            note=f"import {file.filename}",
        )
        record(
            session=s,
            actor=user.username,
            action="import_objectives",
            target=cid,
            detail={"file": file.filename, "rows": len(targets)},
        )
        return _back(cid, f"{len(targets)} objectifs importés de {file.filename}")
