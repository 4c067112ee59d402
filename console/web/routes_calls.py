"""The adviser's day (claim, card, reveal, outcome); the supervisor's board is routes_board."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from campaigns.app.calls import claim_call, record_call_outcome, reveal_contact, skip_call
from campaigns.calls.card import (
    earlier_calls,
    holds_live_claim,
    outcomes_on,
    tried_channels,
    upcoming_callbacks,
)
from campaigns.calls.queue import (
    CallError,
    NotYourCall,
    held_claim,
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
from campaigns.ledger.models import Action, Member, Person, User
from console.web.deps import (
    CSRF,
    Adviser,
    Forbidden,
    Now,
    RowId,
    SessionDep,
    own_call,
    render,
)
from console.web.markup import render_markdown

router = APIRouter()


def mask_phone(phone: str | None) -> str:
    """+33 6 •• •• •• 78: enough to recognise, not to dial."""
    if not phone:
        return "—"
    return phone[:4] + " •• •• •• " + phone[-2:]


def mask_nir(nir: str) -> str:
    """Sex and birth year only."""
    return nir[:3] + " •• •• ••• ••• ••" if nir else "—"


# A draft outcome kept across the redirect of a refused form: what the adviser typed.
DRAFT = "call_draft"


def _next_or_list(s: Session, user: User, now: datetime) -> Response:
    """Claim the next call and show it; committed first, so that the card's request (another
    connection) already sees the claim (else, now and then, a 403 "not yours")."""
    claim = claim_call(session=s, actor=user.username, now=now)
    s.commit()
    if claim is None:
        return RedirectResponse("/calls?m=personne+à+appeler+maintenant", status_code=303)
    return RedirectResponse(f"/calls/{claim.action_id}", status_code=303)


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
        callbacks=upcoming_callbacks(session=s, adviser=user.username, now=now),
        message=request.query_params.get("m"),
        labels=OUTCOME_LABELS,
        PARIS=PARIS,
    )


@router.post("/calls/next", dependencies=CSRF)
def next_contact(user: Adviser, s: SessionDep, now: Now) -> Response:
    return _next_or_list(s, user, now)


def _script(campaign: Any, a: Action, m: Member, p: Person, s: Session, today: date) -> Any:
    """The step's script for this person, rendered, and its context."""
    d = campaign.definition
    ctx = build_context(
        definition=d,
        person=person_context(p, today),
        member=member_context(m, tried_channels(session=s, member_id=a.member_id)),
        step_id=a.step,
        attempt=a.attempt,
        today=today,
    )
    _, script = render_message(campaign.env, d.step(a.step).template, ctx)
    return ctx, render_markdown(script)


@router.get("/calls/{aid}", response_class=HTMLResponse)
def call_card(request: Request, aid: RowId, user: Adviser, s: SessionDep, now: Now) -> HTMLResponse:
    a = own_call(s, aid, user)
    m, p = s.get(Member, a.member_id), s.get(Person, a.person_id)
    assert m is not None and p is not None
    campaign = campaign_by_id(a.campaign_id)
    d = campaign.definition
    today = paris_today(now)
    ctx, script = _script(campaign, a, m, p, s, today)
    step = d.step(a.step)
    offers = suggest(
        load_catalogue(),
        sex=p.sex,
        age=ctx["person"]["age"] or None,
        compte_ameli=p.compte_ameli,
        today=today,
    )
    revealed = request.session.get("revealed") == aid and holds_live_claim(a, user.username, now)
    draft = request.session.get(DRAFT) or {}
    if draft.get("aid") != aid:
        draft = {}
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
        history=earlier_calls(session=s, person_id=a.person_id, before=aid),
        draft=draft,
        PARIS=PARIS,
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
def skip(request: Request, aid: RowId, user: Adviser, s: SessionDep, now: Now) -> Response:
    own_call(s, aid, user)
    skip_call(session=s, actor=user.username, action_id=aid, now=now)
    request.session.pop("revealed", None)
    request.session.pop(DRAFT, None)
    return RedirectResponse("/calls", status_code=303)


def _refused(request: Request, aid: int, why: str, draft: dict[str, Any]) -> Response:
    """Back to the card with the reason, and what was typed kept for the form."""
    request.session[DRAFT] = {"aid": aid, **draft}
    return RedirectResponse(f"/calls/{aid}?e={quote(why)}", status_code=303)


@router.post("/calls/{aid}/outcome", dependencies=CSRF)
def outcome(
    request: Request,
    aid: RowId,
    user: Adviser,
    s: SessionDep,
    now: Now,
    outcome: str = Form(""),
    notes: str = Form("", max_length=2000),
    callback_at: str = Form(""),
    offers: list[str] = Form([]),
    then: str = Form(""),
) -> Response:
    draft = {"outcome": outcome, "notes": notes, "callback_at": callback_at, "offers": offers}
    if not outcome:
        return _refused(request, aid, "choisissez l'issue de l'appel", draft)
    when = None
    if callback_at:
        try:
            when = datetime.fromisoformat(callback_at).replace(tzinfo=PARIS)
        except ValueError:
            return _refused(request, aid, "date de rappel invalide", draft)
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
        return _refused(request, aid, str(e), draft)
    request.session.pop("revealed", None)
    request.session.pop(DRAFT, None)
    if then == "next":
        return _next_or_list(s, user, now)
    return RedirectResponse("/calls", status_code=303)
