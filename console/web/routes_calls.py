"""The adviser's day (claim, card, reveal, outcome) and the supervisor's live board."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from campaigns.app.calls import record_call_outcome, reveal_contact
from campaigns.calls.board import board_rows
from campaigns.calls.card import (
    holds_live_claim,
    outcomes_on,
    registered_definitions,
    tried_channels,
)
from campaigns.calls.queue import (
    CallError,
    NotYourCall,
    claim_next,
    held_claim,
    release,
    renew_lease,
)
from campaigns.cascade.dispatch import member_context, person_context
from campaigns.clock import PARIS, paris_today
from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import OUTCOME_CODES
from campaigns.definition.offers import load_catalogue, suggest
from campaigns.definition.reasons import OUTCOME_LABELS
from campaigns.definition.rendering import build_context, render_message
from campaigns.ledger.audit import record
from campaigns.ledger.models import Member, Person
from console.web.deps import (
    CSRF,
    Adviser,
    Forbidden,
    Now,
    RowId,
    SessionDep,
    Supervisor,
    own_call,
    render,
)

router = APIRouter()


def mask_phone(phone: str | None) -> str:
    """+33 6 •• •• •• 78: enough to recognise, not to dial."""
    if not phone:
        return "—"
    return phone[:4] + " •• •• •• " + phone[-2:]


def mask_nir(nir: str) -> str:
    """Sex and birth year only."""
    return nir[:3] + " •• •• ••• ••• ••" if nir else "—"


@router.get("/calls", response_class=HTMLResponse, response_model=None)
def calls_home(request: Request, user: Adviser, s: SessionDep, now: Now) -> Response:
    held = held_claim(session=s, adviser=user.username, now=now)
    if held is not None:
        return RedirectResponse(f"/calls/{held.id}", status_code=303)
    today = paris_today(now)
    return render(
        request,
        "calls.html",
        user,
        mine=outcomes_on(session=s, adviser=user.username, day=today),
        message=request.query_params.get("m"),
        labels=OUTCOME_LABELS,
    )


@router.post("/calls/next", dependencies=CSRF)
def next_contact(user: Adviser, s: SessionDep, now: Now) -> Response:
    definitions = registered_definitions(session=s)
    claim = claim_next(session=s, adviser=user.username, now=now, definitions=definitions)
    if claim is None:
        return RedirectResponse("/calls?m=personne+à+appeler+maintenant", status_code=303)
    record(session=s, actor=user.username, action="claim", target=f"action/{claim.action_id}")
    return RedirectResponse(f"/calls/{claim.action_id}", status_code=303)


@router.get("/calls/{aid}", response_class=HTMLResponse)
def call_card(request: Request, aid: RowId, user: Adviser, s: SessionDep, now: Now) -> HTMLResponse:
    a = own_call(s, aid, user)
    m, p = s.get(Member, a.member_id), s.get(Person, a.person_id)
    assert m is not None and p is not None
    campaign = campaign_by_id(a.campaign_id)
    d = campaign.definition
    today = paris_today(now)
    ctx = build_context(
        definition=d,
        person=person_context(p, today),
        member=member_context(m, tried_channels(session=s, member_id=a.member_id)),
        step_id=a.step,
        attempt=a.attempt,
        today=today,
    )
    step = d.step(a.step)
    _, script = render_message(campaign.env, step.template, ctx)
    offers = suggest(
        load_catalogue(),
        sex=p.sex,
        age=ctx["person"]["age"] or None,
        compte_ameli=p.compte_ameli,
        today=today,
    )
    revealed = request.session.get("revealed") == aid and holds_live_claim(a, user.username, now)
    record(session=s, actor=user.username, action="view_card", target=f"action/{aid}")
    return render(
        request,
        "call.html",
        user,
        a=a,
        m=m,
        p=p,
        ctx=ctx,
        script=script,
        phone=p.telephone if revealed else mask_phone(p.telephone),
        nir=p.nir if revealed else mask_nir(p.nir),
        revealed=revealed,
        outcomes=[o for o in OUTCOME_CODES if o in step.outcomes],
        labels=OUTCOME_LABELS,
        error=request.query_params.get("e"),
        offers=offers,
        anchor_label=d.labels.anchor,
    )


@router.post("/calls/{aid}/reveal", dependencies=CSRF)
def reveal(request: Request, aid: RowId, user: Adviser, s: SessionDep, now: Now) -> Response:
    try:
        reveal_contact(session=s, actor=user.username, action_id=aid, now=now)
    except NotYourCall as e:
        raise Forbidden(str(e)) from None
    request.session["revealed"] = aid
    return RedirectResponse(f"/calls/{aid}", status_code=303)


@router.post("/calls/{aid}/renew", dependencies=CSRF)
def renew(aid: RowId, user: Adviser, s: SessionDep, now: Now) -> Response:
    try:
        until = renew_lease(session=s, action_id=aid, adviser=user.username, now=now)
    except CallError as e:
        raise Forbidden(str(e)) from None
    return Response(until.isoformat(), media_type="text/plain")


@router.post("/calls/{aid}/release", dependencies=CSRF)
def skip(request: Request, aid: RowId, user: Adviser, s: SessionDep) -> Response:
    own_call(s, aid, user)
    release(session=s, action_id=aid, adviser=user.username)
    request.session.pop("revealed", None)
    record(session=s, actor=user.username, action="release", target=f"action/{aid}")
    return RedirectResponse("/calls", status_code=303)


@router.post("/calls/{aid}/outcome", dependencies=CSRF)
def outcome(
    request: Request,
    aid: RowId,
    user: Adviser,
    s: SessionDep,
    now: Now,
    outcome: str = Form(...),
    notes: str = Form(""),
    callback_at: str = Form(""),
    offers: list[str] = Form([]),
) -> Response:
    when = None
    if callback_at:
        try:
            when = datetime.fromisoformat(callback_at).replace(tzinfo=PARIS)
        except ValueError:
            return RedirectResponse(f"/calls/{aid}?e=date+de+rappel+invalide", status_code=303)
    try:
        record_call_outcome(
            session=s,
            actor=user.username,
            action_id=aid,
            outcome=outcome,
            now=now,
            notes=notes or None,
            callback_at=when,
            offers=offers,
        )
    except NotYourCall as e:
        raise Forbidden(str(e)) from None
    except CallError as e:
        return RedirectResponse(f"/calls/{aid}?e={quote(str(e))}", status_code=303)
    request.session.pop("revealed", None)
    return RedirectResponse("/calls", status_code=303)


@router.get("/board", response_class=HTMLResponse)
def board(request: Request, user: Supervisor, s: SessionDep, now: Now) -> HTMLResponse:
    return render(request, "board.html", user, rows=board_rows(session=s, now=now), now=now)


@router.get("/board/partial", response_class=HTMLResponse)
def board_partial(request: Request, user: Supervisor, s: SessionDep, now: Now) -> HTMLResponse:
    rows = board_rows(session=s, now=now)
    return render(request, "board_partial.html", user, rows=rows, now=now)
