"""`relance validation`: review a campaign's list before launch (échelons, then a manager)."""

from __future__ import annotations

from datetime import date

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlmodel import Session, col, select

from campaigns.db import get_engine, session_scope
from campaigns.models import PENDING, Member, Person, TargetList
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
from flows.validation import resume_with_decision

app = typer.Typer(help="Local validation of a campaign's list before launch.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def _pending(s: Session, campaign: str) -> TargetList:
    lst = pending_list(session=s, campaign_id=campaign)
    if lst is None:
        err.print(f"[red]{escape(campaign)}: no list awaits validation[/red]", soft_wrap=True)
        raise typer.Exit(2)
    return lst


def _fail(e: Exception) -> None:
    err.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
    raise typer.Exit(2) from None


@app.command()
def status(campaign: str = typer.Argument(...)) -> None:
    """The lists of a campaign and, for the pending one, where each échelon stands."""
    with session_scope(get_engine()) as s:
        for lst in s.exec(select(TargetList).where(TargetList.campaign_id == campaign)):
            out.print(
                f"list {lst.id}: {lst.state}, created {lst.created_on}, deadline {lst.deadline}"
                + (f", by {lst.decided_by}" if lst.decided_by else "")
                + (f" — {lst.reason}" if lst.reason else "")
            )
        pending = pending_list(session=s, campaign_id=campaign)
        if pending is None:
            return
        t = Table("échelon", "listed", "excluded", "validated by", "at")
        for e, v in list_status(session=s, target_list=pending).per_echelon.items():
            t.add_row(
                e,
                str(v["listed"]),
                str(v["excluded"]),
                v["signed_by"] or "—",
                str(v["signed_at"] or "—"),
            )
        out.print(t)


@app.command(name="list")
def list_people(
    campaign: str = typer.Argument(...),
    echelon: str = typer.Option(..., "--echelon", help="Only this échelon's people."),
) -> None:
    """The people of one échelon on the pending list (no NIR, no phone number)."""
    with session_scope(get_engine()) as s:
        _pending(s, campaign)
        t = Table("member", "nom", "prénom", "né(e)", "échéance ALD", "priorité")
        for m, p in s.exec(
            select(Member, Person)
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(
                Member.campaign_id == campaign, Member.status == PENDING, Member.echelon == echelon
            )
            .order_by(col(Member.anchor_date))
        ):
            t.add_row(
                str(m.id),
                p.nom,
                p.prenom,
                str(p.birth_year or "?"),
                str(m.anchor_date),
                "oui" if m.priority else "",
            )
        out.print(t)


@app.command(name="exclude")
def exclude_cmd(
    campaign: str = typer.Argument(...),
    member: int = typer.Option(..., "--member"),
    reason: str = typer.Option(..., "--reason", help=", ".join(EXCLUSION_REASONS)),
    by: str = typer.Option(..., "--by", help="Who excludes (recorded)."),
    note: str = typer.Option(None, "--note"),
    scope: str = typer.Option(None, "--echelon", help="The échelon the person acts for."),
) -> None:
    """Take a person off the list, with a reason (reversible until launch)."""
    with session_scope(get_engine()) as s:
        try:
            exclude(
                session=s,
                target_list=_pending(s, campaign),
                member_id=member,
                reason=reason,
                by=by,
                note=note,
                scope=scope,
            )
        except (ValidationError, PermissionError) as e:
            _fail(e)
    out.print(f"member {member} excluded ({EXCLUSION_REASONS[reason]}) by {by}")


@app.command()
def revoke(
    campaign: str = typer.Argument(...),
    member: int = typer.Option(..., "--member"),
    by: str = typer.Option(..., "--by"),
    scope: str = typer.Option(None, "--echelon"),
) -> None:
    """Put an excluded person back on the list."""
    with session_scope(get_engine()) as s:
        try:
            done = revoke_exclusion(
                session=s, target_list=_pending(s, campaign), member_id=member, by=by, scope=scope
            )
        except (ValidationError, PermissionError) as e:
            _fail(e)
    out.print(f"member {member} back on the list" if done else "nothing to revoke")


@app.command(name="sign-off")
def sign_off_cmd(
    campaign: str = typer.Argument(...),
    echelon: str = typer.Option(..., "--echelon"),
    by: str = typer.Option(..., "--by"),
) -> None:
    """Mark an échelon's list as reviewed."""
    with session_scope(get_engine()) as s:
        try:
            sign_off(
                session=s, target_list=_pending(s, campaign), echelon=echelon, by=by, scope=echelon
            )
        except (ValidationError, PermissionError) as e:
            _fail(e)
    out.print(f"échelon {echelon} validated by {by}")


@app.command(name="approve")
def approve_cmd(
    campaign: str = typer.Argument(...),
    by: str = typer.Option(..., "--by", help="The approving campaign manager (recorded)."),
) -> None:
    """Launch the list: every échelon must have validated it."""
    with session_scope(get_engine()) as s:
        lst = _pending(s, campaign)
        try:
            counts = approve(session=s, target_list=lst, by=by, today=date.today())
        except ValidationError as e:
            _fail(e)
        run = lst.flow_run_id
    for echelon, c in counts.items():
        out.print(f"  {echelon}: {c['launched']} launched, {c['excluded']} excluded")
    out.print(resume_with_decision(run, {"approved": True, "approver": by}))


@app.command(name="reject")
def reject_cmd(
    campaign: str = typer.Argument(...),
    by: str = typer.Option(..., "--by"),
    reason: str = typer.Option(..., "--reason"),
) -> None:
    """Refuse the list: nobody on it is contacted."""
    with session_scope(get_engine()) as s:
        lst = _pending(s, campaign)
        reject(session=s, target_list=lst, by=by, reason=reason, today=date.today())
        run = lst.flow_run_id
    out.print(f"list {lst.id} rejected by {by}: {reason}")
    out.print(resume_with_decision(run, {"approved": False, "approver": by, "reason": reason}))


def register(root: typer.Typer) -> None:
    """Add the command group to the CLI."""
    root.add_typer(app, name="validation")
