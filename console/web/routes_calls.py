"""The adviser's day (claim, card, reveal, outcome) and the supervisor's live board."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.calls.queue import (
    CallError,
    claim_next,
    held_claim,
    record_outcome,
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
from campaigns.ledger.models import (
    DONE,
    QUEUED,
    SUCCESS_STATES,
    Action,
    AuditEvent,
    Campaign,
    Member,
    MemberEvent,
    Person,
    User,
)
from console.web.app import Forbidden, RowId, check_csrf, clock, db, render, roles


def mask_phone(phone: str | None) -> str:
    """+33 6 •• •• •• 78: enough to recognise, not to dial."""
    if not phone:
        return "—"
    return phone[:4] + " •• •• •• " + phone[-2:]


def mask_nir(nir: str) -> str:
    """Sex and birth year only."""
    return nir[:3] + " •• •• ••• ••• ••" if nir else "—"


def _definitions(s: Session) -> dict[str, Any]:
    return {c.id: campaign_by_id(c.id).definition for c in s.exec(select(Campaign))}


def _own_call(s: Session, aid: int, user: User) -> Action:
    a = s.get(Action, aid)
    if a is None or a.claimed_by != user.username:
        raise Forbidden("this call is not yours")
    return a


def add_routes(app: FastAPI) -> None:
    """Register the adviser and supervisor pages."""

    @app.get("/calls", response_class=HTMLResponse, response_model=None)
    def calls_home(
        request: Request,
        user: User = roles("adviser"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> Response:
        held = held_claim(session=s, adviser=user.username, now=now)
        if held is not None:
            return RedirectResponse(f"/calls/{held.id}", status_code=303)
        today = paris_today(now)
        mine = s.exec(
            select(Action.outcome, func.count())
            .where(Action.claimed_by == user.username, Action.done_on == today)
            .group_by(col(Action.outcome))
        ).all()
        return render(
            request,
            "calls.html",
            user,
            mine=dict(mine),
            message=request.query_params.get("m"),
            labels=OUTCOME_LABELS,
        )

    @app.post("/calls/next", dependencies=[Depends(check_csrf)])
    def next_contact(
        user: User = roles("adviser"), s: Session = Depends(db), now: datetime = Depends(clock)
    ) -> Response:
        claim = claim_next(session=s, adviser=user.username, now=now, definitions=_definitions(s))
        if claim is None:
            return RedirectResponse("/calls?m=personne+à+appeler+maintenant", status_code=303)
        record(session=s, actor=user.username, action="claim", target=f"action/{claim.action_id}")
        return RedirectResponse(f"/calls/{claim.action_id}", status_code=303)

    @app.get("/calls/{aid}", response_class=HTMLResponse)
    def call_card(
        request: Request,
        aid: RowId,
        user: User = roles("adviser"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> HTMLResponse:
        a = _own_call(s, aid, user)
        m, p = s.get(Member, a.member_id), s.get(Person, a.person_id)
        assert m is not None and p is not None
        campaign = campaign_by_id(a.campaign_id)
        d = campaign.definition
        today = paris_today(now)
        tried = sorted(
            {
                ch
                for ch in s.exec(
                    select(Action.channel).where(
                        Action.member_id == m.id, col(Action.state).in_(SUCCESS_STATES)
                    )
                )
            }
        )
        ctx = build_context(
            definition=d,
            person=person_context(p, today),
            member=member_context(m, tried),
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
        revealed = request.session.get("revealed") == aid
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
        )

    @app.post("/calls/{aid}/reveal", dependencies=[Depends(check_csrf)])
    def reveal(
        request: Request, aid: RowId, user: User = roles("adviser"), s: Session = Depends(db)
    ) -> Response:
        a = _own_call(s, aid, user)
        request.session["revealed"] = aid
        record(
            session=s,
            actor=user.username,
            action="reveal_contact",
            target=f"person/{a.person_id}",
            detail={"action": aid},
        )
        return RedirectResponse(f"/calls/{aid}", status_code=303)

    @app.post("/calls/{aid}/renew", dependencies=[Depends(check_csrf)])
    def renew(
        aid: RowId,
        user: User = roles("adviser"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> Response:
        try:
            until = renew_lease(session=s, action_id=aid, adviser=user.username, now=now)
        except CallError as e:
            raise Forbidden(str(e)) from None
        return Response(until.isoformat(), media_type="text/plain")

    @app.post("/calls/{aid}/release", dependencies=[Depends(check_csrf)])
    def skip(
        request: Request, aid: RowId, user: User = roles("adviser"), s: Session = Depends(db)
    ) -> Response:
        _own_call(s, aid, user)
        release(session=s, action_id=aid, adviser=user.username)
        request.session.pop("revealed", None)
        record(session=s, actor=user.username, action="release", target=f"action/{aid}")
        return RedirectResponse("/calls", status_code=303)

    @app.post("/calls/{aid}/outcome", dependencies=[Depends(check_csrf)])
    def outcome(
        request: Request,
        aid: RowId,
        outcome: str = Form(...),
        notes: str = Form(""),
        callback_at: str = Form(""),
        offers: list[str] = Form([]),
        user: User = roles("adviser"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> Response:
        a = s.get(Action, aid)
        if a is None or a.claimed_by != user.username:
            raise Forbidden("this call is not yours")
        when = None
        if callback_at:
            try:
                when = datetime.fromisoformat(callback_at).replace(tzinfo=PARIS)
            except ValueError:
                return RedirectResponse(f"/calls/{aid}?e=date+de+rappel+invalide", status_code=303)
        try:
            record_outcome(
                session=s,
                action_id=aid,
                adviser=user.username,
                outcome=outcome,
                now=now,
                definition=campaign_by_id(a.campaign_id).definition,
                notes=notes or None,
                callback_at=when,
            )
        except CallError as e:
            from urllib.parse import quote

            return RedirectResponse(f"/calls/{aid}?e={quote(str(e))}", status_code=303)
        catalogue = load_catalogue()
        made = [o for o in offers if catalogue.get(o) is not None]
        for offer_id in made:
            s.add(
                MemberEvent(
                    member_id=a.member_id,
                    on=paris_today(now),
                    kind="offer_made",
                    detail={"offer": offer_id, "by": user.username, "action": aid},
                )
            )
        request.session.pop("revealed", None)
        record(
            session=s,
            actor=user.username,
            action="outcome",
            target=f"action/{aid}",
            detail={"outcome": outcome, "offers": made},
        )
        return RedirectResponse("/calls", status_code=303)

    @app.get("/board", response_class=HTMLResponse)
    def board(
        request: Request,
        user: User = roles("supervisor"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> HTMLResponse:
        return render(request, "board.html", user, rows=board_rows(s, now), now=now)

    @app.get("/board/partial", response_class=HTMLResponse)
    def board_partial(
        request: Request,
        user: User = roles("supervisor"),
        s: Session = Depends(db),
        now: datetime = Depends(clock),
    ) -> HTMLResponse:
        return render(request, "board_partial.html", user, rows=board_rows(s, now), now=now)


def board_rows(s: Session, now: datetime) -> dict[str, Any]:
    """Today's figures per campaign and échelon, and who holds a call now."""
    today = paris_today(now)
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {
            "calls": 0,
            "reached": 0,
            "queue": 0,
            "callbacks_due": 0,
            "enrolled_on_call": 0,
            "outcomes": defaultdict(int),
        }
    )
    from campaigns.definition.model import REACHED_OUTCOMES

    for cid, echelon, outcome, n in s.exec(
        select(Action.campaign_id, Member.echelon, Action.outcome, func.count())
        .join(Member, col(Member.id) == col(Action.member_id))
        .where(Action.channel == "phone", Action.state == DONE, Action.done_on == today)
        .group_by(col(Action.campaign_id), col(Member.echelon), col(Action.outcome))
    ):
        row = per[(cid, echelon)]
        row["calls"] += n
        row["outcomes"][outcome] += n
        if outcome in REACHED_OUTCOMES:
            row["reached"] += n
        if outcome == "enrolled_on_call":
            row["enrolled_on_call"] += n
    for cid, echelon, due_at, n in s.exec(
        select(Action.campaign_id, Member.echelon, Action.due_at, func.count())
        .join(Member, col(Member.id) == col(Action.member_id))
        .where(Action.channel == "phone", Action.state == QUEUED, col(Action.due_on) <= today)
        .group_by(col(Action.campaign_id), col(Member.echelon), col(Action.due_at))
    ):
        per[(cid, echelon)]["queue"] += n
        if due_at is not None:
            per[(cid, echelon)]["callbacks_due"] += n
    holders = s.exec(
        select(Action.claimed_by, Action.campaign_id, Action.lease_until).where(
            Action.state == QUEUED,
            col(Action.claimed_by).is_not(None),
            col(Action.lease_until) >= now,
        )
    ).all()
    since = now - timedelta(hours=1)
    last_hour = s.exec(
        select(func.count())
        .select_from(Action)
        .where(Action.channel == "phone", Action.state == DONE, col(Action.updated_at) >= since)
    ).one()
    return {
        "per": dict(sorted(per.items())),
        "holders": holders,
        "last_hour": last_hour,
        **_advisers_today(s, now, {h[0] for h in holders}),
    }


def _advisers_today(s: Session, now: datetime, in_call: set[str | None]) -> dict[str, Any]:
    """Who is connected and in what state; mean handling time (number shown → outcome saved)."""
    start = datetime.combine(paris_today(now), datetime.min.time(), tzinfo=PARIS)
    events = s.exec(
        select(AuditEvent)
        .where(
            col(AuditEvent.at) >= start,
            col(AuditEvent.action).in_(["login", "logout", "reveal_contact", "outcome"]),
        )
        .order_by(col(AuditEvent.id))
    ).all()
    advisers = set(s.exec(select(User.username).where(User.role == "adviser")).all())
    connected: dict[str, bool] = {}
    revealed: dict[str, datetime] = {}
    handling: list[float] = []
    for e in events:
        if e.actor not in advisers:
            continue
        if e.action in ("login", "logout"):
            connected[e.actor] = e.action == "login"
        elif e.action == "reveal_contact":
            revealed[f"action/{e.detail.get('action')}"] = e.at
        elif e.action == "outcome" and e.target in revealed:
            handling.append((e.at - revealed.pop(e.target)).total_seconds())
    states = {
        who: ("en appel" if who in in_call else "disponible")
        for who, on in sorted(connected.items())
        if on
    }
    mean = sum(handling) / len(handling) if handling else None
    return {"advisers": states, "mean_handling_s": mean, "handled": len(handling)}
