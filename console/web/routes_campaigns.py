"""Campaign pages: the lists échelons review before launch, and a person's page."""

from __future__ import annotations

from datetime import date

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from campaigns.audit import record
from campaigns.catalog import campaign_by_id
from campaigns.models import PENDING, Action, Campaign, Exclusion, Member, MemberEvent, Person, User
from campaigns.validation import (
    EXCLUSION_REASONS,
    ValidationError,
    approve,
    exclude,
    list_status,
    pending_list,
    reject,
    revoke_exclusion,
    sign_off,
)
from console.web.app import Forbidden, FormRowId, RowId, check_csrf, db, render, roles

REVIEWERS = ("echelon_lead", "campaign_manager")


def _scope(user: User) -> str | None:
    """The échelon a user is limited to (None: every échelon)."""
    return user.echelon if user.role == "echelon_lead" else None


def add_routes(app: FastAPI) -> None:
    """Register the campaign pages."""

    @app.get("/campaigns", response_class=HTMLResponse)
    def campaigns(
        request: Request,
        user: User = roles(*REVIEWERS, "supervisor", "regional_lead"),
        s: Session = Depends(db),
    ) -> HTMLResponse:
        rows = []
        for c in s.exec(select(Campaign).order_by(col(Campaign.id))):
            rows.append((c, pending_list(session=s, campaign_id=c.id)))
        return render(request, "campaigns.html", user, rows=rows)

    @app.get("/campaigns/{cid}/validation", response_class=HTMLResponse)
    def validation_page(
        request: Request,
        cid: str,
        echelon: str | None = None,
        user: User = roles(*REVIEWERS),
        s: Session = Depends(db),
    ) -> HTMLResponse:
        lst = pending_list(session=s, campaign_id=cid)
        scope = _scope(user)
        if scope is not None:
            if echelon not in (None, scope):
                raise Forbidden("an échelon lead sees only the list of their échelon")
            echelon = scope
        status = list_status(session=s, target_list=lst) if lst else None
        people = []
        if lst is not None and echelon is not None:
            excluded = {
                e.member_id: e
                for e in s.exec(
                    select(Exclusion).where(
                        Exclusion.list_id == lst.id, col(Exclusion.revoked_at).is_(None)
                    )
                )
            }
            for m, p in s.exec(
                select(Member, Person)
                .join(Person, col(Person.id) == col(Member.person_id))
                .where(
                    Member.campaign_id == cid, Member.status == PENDING, Member.echelon == echelon
                )
                .order_by(col(Member.anchor_date), col(Member.id))
            ):
                people.append((m, p, excluded.get(m.id or 0)))
            record(
                session=s,
                actor=user.username,
                action="view_list",
                target=f"{cid}/list/{lst.id}/{echelon}",
                detail={"people": len(people)},
            )
        labels = campaign_by_id(cid).definition.presentation.gap_labels
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
            message=request.query_params.get("m"),
        )

    def _back(cid: str, echelon: str | None, message: str) -> Response:
        from urllib.parse import quote

        q = f"?m={quote(message)}" + (f"&echelon={echelon}" if echelon else "")
        return RedirectResponse(f"/campaigns/{cid}/validation{q}", status_code=303)

    @app.post("/campaigns/{cid}/validation/exclude", dependencies=[Depends(check_csrf)])
    def exclude_route(
        cid: str,
        member_id: FormRowId,
        reason: str = Form(...),
        note: str = Form(""),
        user: User = roles(*REVIEWERS),
        s: Session = Depends(db),
    ) -> Response:
        lst = pending_list(session=s, campaign_id=cid)
        if lst is None:
            return _back(cid, None, "aucune liste en attente")
        m = s.get(Member, member_id)
        try:
            exclude(
                session=s,
                target_list=lst,
                member_id=member_id,
                reason=reason,
                note=note or None,
                by=user.username,
                scope=_scope(user),
            )
        except PermissionError as e:
            raise Forbidden(str(e)) from None
        except ValidationError as e:
            return _back(cid, m.echelon if m else None, str(e))
        record(
            session=s,
            actor=user.username,
            action="exclude",
            target=f"{cid}/member/{member_id}",
            detail={"reason": reason},
        )
        return _back(cid, m.echelon if m else None, f"personne {member_id} retirée de la liste")

    @app.post("/campaigns/{cid}/validation/revoke", dependencies=[Depends(check_csrf)])
    def revoke_route(
        cid: str,
        member_id: FormRowId,
        user: User = roles(*REVIEWERS),
        s: Session = Depends(db),
    ) -> Response:
        lst = pending_list(session=s, campaign_id=cid)
        m = s.get(Member, member_id)
        if lst is None or m is None:
            return _back(cid, None, "aucune liste en attente")
        try:
            revoke_exclusion(
                session=s,
                target_list=lst,
                member_id=member_id,
                by=user.username,
                scope=_scope(user),
            )
        except PermissionError as e:
            raise Forbidden(str(e)) from None
        except ValidationError as e:
            return _back(cid, m.echelon, str(e))
        record(
            session=s,
            actor=user.username,
            action="revoke_exclusion",
            target=f"{cid}/member/{member_id}",
        )
        return _back(cid, m.echelon, f"personne {member_id} remise sur la liste")

    @app.post("/campaigns/{cid}/validation/sign-off", dependencies=[Depends(check_csrf)])
    def sign_off_route(
        cid: str,
        echelon: str = Form(...),
        user: User = roles(*REVIEWERS),
        s: Session = Depends(db),
    ) -> Response:
        lst = pending_list(session=s, campaign_id=cid)
        if lst is None:
            return _back(cid, echelon, "aucune liste en attente")
        try:
            sign_off(
                session=s, target_list=lst, echelon=echelon, by=user.username, scope=_scope(user)
            )
        except PermissionError as e:
            raise Forbidden(str(e)) from None
        except ValidationError as e:
            return _back(cid, echelon, str(e))
        record(
            session=s,
            actor=user.username,
            action="sign_off",
            target=f"{cid}/list/{lst.id}/{echelon}",
        )
        return _back(cid, echelon, f"liste de l'échelon {echelon} validée")

    @app.post("/campaigns/{cid}/validation/decide", dependencies=[Depends(check_csrf)])
    def decide_route(
        cid: str,
        decision: str = Form(...),
        reason: str = Form(""),
        user: User = roles("campaign_manager"),
        s: Session = Depends(db),
    ) -> Response:
        from flows.validation import resume_with_decision

        lst = pending_list(session=s, campaign_id=cid)
        if lst is None:
            return _back(cid, None, "aucune liste en attente")
        try:
            if decision == "approve":
                counts = approve(session=s, target_list=lst, by=user.username, today=date.today())
                payload: dict[str, object] = {"approved": True, "approver": user.username}
                message = f"liste lancée : {sum(c['launched'] for c in counts.values())} personnes"
            else:
                if not reason.strip():
                    return _back(cid, None, "un refus doit être motivé")
                reject(
                    session=s, target_list=lst, by=user.username, reason=reason, today=date.today()
                )
                payload = {"approved": False, "approver": user.username, "reason": reason}
                message = "liste refusée"
        except ValidationError as e:
            return _back(cid, None, str(e))
        record(
            session=s,
            actor=user.username,
            action=f"list_{decision}",
            target=f"{cid}/list/{lst.id}",
            detail={"counts": lst.counts, "reason": reason},
        )
        s.commit()
        resume_with_decision(lst.flow_run_id, payload)
        return _back(cid, None, message)

    @app.post("/campaigns/{cid}/members/{mid}/opposition", dependencies=[Depends(check_csrf)])
    def opposition_route(
        request: Request,
        cid: str,
        mid: RowId,
        canal: str = Form(...),
        user: User = roles("adviser", "supervisor", "campaign_manager"),
        s: Session = Depends(db),
    ) -> Response:
        from campaigns.clock import PARIS
        from campaigns.policy import OPPOSITION_CANALS, record_opposition

        m = s.get(Member, mid)
        if m is None or m.campaign_id != cid:
            raise Forbidden("no such person in this campaign")
        if user.role == "adviser" and (
            s.exec(
                select(Action).where(Action.member_id == mid, Action.claimed_by == user.username)
            ).first()
            is None
        ):
            raise Forbidden("an adviser records oppositions only for the person they are calling")
        if canal not in OPPOSITION_CANALS:
            raise Forbidden("unknown channel")
        p = s.get(Person, m.person_id)
        assert p is not None
        record_opposition(
            s,
            ben_nir_psa=p.ben_nir_psa,
            ben_rng_gem=p.ben_rng_gem,
            canal=canal,
            on=request.app.state.clock().astimezone(PARIS).date(),  # effective at once
            source=f"console by {user.username}",
        )
        record(
            session=s,
            actor=user.username,
            action="record_opposition",
            target=f"{cid}/member/{mid}",
            detail={"canal": canal},
        )
        return RedirectResponse(f"/campaigns/{cid}/members/{mid}", status_code=303)

    @app.get("/campaigns/{cid}/members/{mid}", response_class=HTMLResponse)
    def person_page(
        request: Request,
        cid: str,
        mid: RowId,
        user: User = roles("adviser", "supervisor", *REVIEWERS),
        s: Session = Depends(db),
    ) -> HTMLResponse:
        m = s.get(Member, mid)
        if m is None or m.campaign_id != cid:
            raise Forbidden("no such person in this campaign")
        scope = _scope(user)
        if scope is not None and m.echelon != scope:
            raise Forbidden("this person belongs to another échelon")
        if user.role == "adviser":
            held = s.exec(
                select(Action).where(Action.member_id == mid, Action.claimed_by == user.username)
            ).first()
            if held is None:
                raise Forbidden("an adviser sees only the person they are calling")
        p = s.get(Person, m.person_id)
        assert p is not None
        events = s.exec(
            select(MemberEvent).where(MemberEvent.member_id == mid).order_by(col(MemberEvent.id))
        ).all()
        actions = s.exec(
            select(Action).where(Action.member_id == mid).order_by(col(Action.id))
        ).all()
        explanation, explain_error = None, None
        settings = request.app.state.settings
        try:
            from targeting.explain import explain_person

            explanation = explain_person(
                rule=campaign_by_id(cid).definition.targeting,
                extract=settings.resolved_extract_dir,
                as_of=m.entered_on,
                ben_nir_psa=p.ben_nir_psa,
                ben_rng_gem=p.ben_rng_gem,
            )
        except Exception as e:  # the page still shows the ledger's facts
            explain_error = f"explication indisponible : {e}"
        record(session=s, actor=user.username, action="view_person", target=f"{cid}/member/{mid}")
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
        )
