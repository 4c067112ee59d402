"""`relance why` (a person's path through a campaign), `relance audit verify|checkpoint`."""

from __future__ import annotations

import typer
from rich.console import Console

audit = typer.Typer(help="Le journal d'audit.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def why(
    person: str = typer.Option(..., "--person", help="BEN_NIR_PSA:BEN_RNG_GEM"),
    campaign: str = typer.Option(..., "--campaign", help="Identifiant de la campagne."),
) -> None:
    """Pourquoi cette personne a été contactée ou non : chaque décision enregistrée, datée."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.ledger.db import get_engine, session_scope

    # heavy optional dependency: as above.
    from campaigns.measurement.why import why as person_story

    psa, _, rng = person.rpartition(":")
    if not psa or not (rng.isascii() and rng.isdigit()):
        err.print("[red]--person doit être de la forme BEN_NIR_PSA:BEN_RNG_GEM[/red]")
        raise typer.Exit(2)
    with session_scope(get_engine()) as s:
        story = person_story(session=s, campaign_id=campaign, ben_nir_psa=psa, ben_rng_gem=int(rng))
    if not story.found:
        out.print(
            f"{person} n'est jamais entré(e) dans {campaign} "
            "(voir `relance explain` pour le ciblage)",
            markup=False,
        )
        raise typer.Exit(1)
    out.print(f"{person} dans {campaign} : {story.status}", markup=False)
    for day, line in story.lines:
        out.print(f"  {day.strftime('%d/%m/%Y')}  {line}", markup=False)


@audit.command("verify")
def audit_verify() -> None:
    """Vérifie le journal d'audit (séquence, chaîne, HMAC, points de contrôle) ; code 1 au
    premier événement en désaccord."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.ledger.audit import check, checkpoints_path

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    with session_scope(get_engine()) as s:
        v = check(session=s)
    if not v.ok:
        where = v.where
        if v.broken_id is not None:
            where += f" (id {v.broken_id})"
        err.print(f"[red]journal d'audit altéré — {where} : {v.reason}[/red]")
        err.print(f"{v.events} événements vérifiés avant celui-ci")
        raise typer.Exit(1)
    out.print(
        f"journal d'audit intact : {v.events} événements, {v.checkpoints} points de contrôle "
        f"({checkpoints_path()})"
    )


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Ajoute un point de contrôle signé (n° et empreinte du dernier événement de chaque voie)
    hors base."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.app.stages import audit_checkpoint_stage

    # heavy optional dependency: as above.
    from campaigns.ledger.audit import checkpoints_path, event_name

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine

    lines = audit_checkpoint_stage(engine=get_engine())
    if not lines:
        out.print("journal d'audit vide : aucun point de contrôle écrit")
        return
    named = " ; ".join(event_name(cp["lane"], cp["seq"]) for cp in lines)
    out.print(f"point de contrôle écrit : {named} dans {checkpoints_path()}")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command(name="why")(why)
    app.add_typer(audit, name="audit")
