"""`relance validation`: review a campaign's list before launch (échelons, then a manager).

Every step goes through `campaigns.app.validation`, which audits it under `--by`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from campaigns.clock import PARIS, paris_today
from campaigns.definition.reasons import EXCLUSION_REASONS

if TYPE_CHECKING:
    from sqlmodel import Session

    from campaigns.app.validation import Decided

app = typer.Typer(
    help="Validation locale de la liste d'une campagne avant lancement.", no_args_is_help=True
)
out, err = Console(), Console(stderr=True)
STATES = {
    "pending": "en attente",
    "approved": "lancée",
    "rejected": "refusée",
    "expired": "expirée",
}


@contextmanager
def _step() -> Iterator[Session]:
    """A session whose refused step ends the command with its reason (exit code 2)."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.cascade.review import ValidationError

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    try:
        with session_scope(get_engine()) as s:
            yield s
    except (ValidationError, PermissionError) as e:
        err.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def status(campaign: str = typer.Argument(...)) -> None:
    """Les listes d'une campagne et, pour celle en attente, où en est chaque échelon."""
    from sqlmodel import select

    # heavy optional dependency: the ledger loads only when a command runs.
    from campaigns.cascade.review import list_status, pending_list

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    # heavy optional dependency: as above.
    from campaigns.ledger.models import TargetList

    with session_scope(get_engine()) as s:
        for lst in s.exec(select(TargetList).where(TargetList.campaign_id == campaign)):
            out.print(
                f"liste {lst.id} : {STATES.get(lst.state, lst.state)}, créée le {lst.created_on}, "
                f"échéance {lst.deadline}"
                + (f", par {lst.decided_by}" if lst.decided_by else "")
                + (f" — {lst.reason}" if lst.reason else ""),
                markup=False,
            )
        pending = pending_list(session=s, campaign_id=campaign)
        if pending is None:
            return
        t = Table("échelon", "listées", "retirées", "validée par", "le (Paris)")
        for e, v in list_status(session=s, target_list=pending).per_echelon.items():
            at = (
                v["signed_at"].astimezone(PARIS).strftime("%d/%m/%Y %H:%M")
                if v["signed_at"]
                else "—"
            )
            t.add_row(e, str(v["listed"]), str(v["excluded"]), v["signed_by"] or "—", at)
        out.print(t)


@app.command(name="list")
def list_people(
    campaign: str = typer.Argument(...),
    echelon: str = typer.Option(..., "--echelon", help="Les personnes de cet échelon seulement."),
    by: str = typer.Option(..., "--by", help="Qui consulte la liste (journal d'audit)."),
) -> None:
    """Les personnes d'un échelon sur la liste en attente (ni NIR ni téléphone)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import validation as uc

    # heavy optional dependency: the campaign's definition (pydantic, Jinja2).
    from campaigns.definition.catalog import campaign_by_id

    with _step() as s:
        people = uc.echelon_people(session=s, actor=by, campaign_id=campaign, echelon=echelon)
        anchor = campaign_by_id(campaign).definition.labels.anchor
        t = Table("personne", "nom", "prénom", "né(e)", anchor, "priorité", "retirée")
        for m, p, excluded in people:
            t.add_row(
                str(m.id),
                p.nom,
                p.prenom,
                str(p.birth_year or "?"),
                str(m.anchor_date),
                "oui" if m.priority else "",
                EXCLUSION_REASONS[excluded.reason] if excluded else "",
            )
        out.print(t)


@app.command(name="exclude")
def exclude_cmd(
    campaign: str = typer.Argument(...),
    member: int = typer.Option(..., "--member"),
    reason: str = typer.Option(..., "--reason", help=", ".join(EXCLUSION_REASONS)),
    by: str = typer.Option(..., "--by", help="Qui retire la personne (journal d'audit)."),
    note: str = typer.Option(None, "--note"),
    scope: str = typer.Option(None, "--echelon", help="L'échelon pour lequel on agit."),
) -> None:
    """Retirer une personne de la liste, avec un motif (réversible jusqu'au lancement)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import validation as uc

    with _step() as s:
        uc.exclude_member(
            session=s,
            actor=by,
            campaign_id=campaign,
            member_id=member,
            reason=reason,
            note=note,
            scope=scope,
        )
    out.print(f"personne {member} retirée ({EXCLUSION_REASONS[reason]}) par {by}", markup=False)


@app.command()
def revoke(
    campaign: str = typer.Argument(...),
    member: int = typer.Option(..., "--member"),
    by: str = typer.Option(..., "--by"),
    scope: str = typer.Option(None, "--echelon"),
) -> None:
    """Remettre sur la liste une personne retirée."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import validation as uc

    with _step() as s:
        done = uc.revoke_exclusion(
            session=s, actor=by, campaign_id=campaign, member_id=member, scope=scope
        )
    out.print(f"personne {member} remise sur la liste" if done else "rien à annuler")


@app.command(name="sign-off")
def sign_off_cmd(
    campaign: str = typer.Argument(...),
    echelon: str = typer.Option(..., "--echelon"),
    by: str = typer.Option(
        ..., "--by", help="Le compte qui valide : le responsable de l'échelon, ou un admin."
    ),
    reason: str = typer.Option("", "--reason", help="Le motif (exigé d'un administrateur)."),
) -> None:
    """Valider la liste d'un échelon (son responsable, ou un administrateur avec un motif)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import validation as uc

    with _step() as s:
        uc.sign_off_echelon(
            session=s, actor=by, campaign_id=campaign, echelon=echelon, scope=echelon,
            reason=reason,
        )  # fmt: skip
    out.print(f"liste de l'échelon {echelon} validée par {by}", markup=False)


def _decide(campaign: str, decision: str, by: str, reason: str = "") -> Decided:
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import validation as uc

    # heavy optional dependency: Prefect loads only to resume a paused validation flow.
    from flows.validation import resume_with_decision

    with _step() as s:
        done = uc.decide_list(
            session=s,
            actor=by,
            campaign_id=campaign,
            decision=decision,
            reason=reason,
            today=paris_today(),
            via="cli",
        )
    out.print(resume_with_decision(done.flow_run_id, done.as_input(actor=by, reason=reason)))
    return done


@app.command(name="approve")
def approve_cmd(
    campaign: str = typer.Argument(...),
    by: str = typer.Option(..., "--by", help="Le responsable de campagne qui lance (audité)."),
) -> None:
    """Lancer la liste : chaque échelon doit l'avoir validée."""
    done = _decide(campaign, "approve", by)
    for echelon, c in done.counts.items():
        out.print(f"  {echelon} : {c['launched']} lancées, {c['excluded']} retirées")


@app.command(name="reject")
def reject_cmd(
    campaign: str = typer.Argument(...),
    by: str = typer.Option(..., "--by"),
    reason: str = typer.Option(..., "--reason"),
) -> None:
    """Refuser la liste : personne n'y est contacté."""
    done = _decide(campaign, "reject", by, reason)
    out.print(f"liste {done.list_id} refusée par {by} : {reason}", markup=False)


def register(root: typer.Typer) -> None:
    """Add the command group to the CLI."""
    root.add_typer(app, name="validation")
