"""A campaign's preview: audience on a day, the cascade, its messages for sample people."""

from __future__ import annotations

import re
from datetime import date

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from campaigns.app.preview import PreviewError, preview_campaign, preview_letter
from campaigns.clock import paris_today
from console.web.deps import CampaignManager, Now, SessionDep, render
from console.web.markup import render_markdown

router = APIRouter()
_TAGS = re.compile(r"<(style|script)\b.*?</\1>|<[^>]+>", re.S | re.I)
_SPACES = re.compile(r"\s+")


def _day(raw: str | None, today: date) -> tuple[date, str | None]:
    if not raw:
        return today, None
    try:
        return date.fromisoformat(raw), None
    except ValueError:
        return today, f"« {raw} » n'est pas une date (AAAA-MM-JJ) : aperçu au {today:%d/%m/%Y}"


@router.get("/campaigns/{cid}/preview", response_class=HTMLResponse)
def preview_page(
    request: Request, cid: str, user: CampaignManager, s: SessionDep, now: Now
) -> Response:
    day, problem = _day(request.query_params.get("date"), paris_today(now))
    try:
        p = preview_campaign(
            session=s,
            actor=user.username,
            campaign_id=cid,
            day=day,
            extract=request.app.state.settings.resolved_extract_dir,
            now=now,
        )
    except PreviewError as e:
        raise HTTPException(status_code=404, detail=str(e)) from None
    bodies = {
        (r.step_id, r.variant): render_markdown(r.body)
        if not r.is_letter
        else _SPACES.sub(" ", _TAGS.sub(" ", r.body)).strip()
        for r in p.rendered
        if not r.error
    }
    return render(request, "preview.html", user, p=p, bodies=bodies, problem=problem)


@router.get("/campaigns/{cid}/preview/{step}.pdf")
def preview_letter_pdf(
    request: Request, cid: str, step: str, user: CampaignManager, s: SessionDep, now: Now
) -> Response:
    priority = request.query_params.get("priorite", "1") != "0"
    try:
        pdf = preview_letter(
            session=s,
            actor=user.username,
            campaign_id=cid,
            step_id=step,
            priority=priority,
            now=now,
        )
    except PreviewError as e:
        raise HTTPException(status_code=404, detail=str(e)) from None
    name = f"apercu-{cid}-{step}-{'prioritaire' if priority else 'non-prioritaire'}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )
