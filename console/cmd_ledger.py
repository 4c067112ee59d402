"""`relance why` (a person's path through a campaign) and `relance audit verify`."""

from __future__ import annotations

import typer
from rich.console import Console

from campaigns.audit import verify
from campaigns.db import get_engine, session_scope
from campaigns.why import why as person_story

audit = typer.Typer(help="The audit log.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def why(
    person: str = typer.Option(..., "--person", help="BEN_NIR_PSA:BEN_RNG_GEM"),
    campaign: str = typer.Option(..., "--campaign"),
) -> None:
    """Why this person was, or was not, contacted: every recorded decision, dated."""
    psa, _, rng = person.rpartition(":")
    if not psa or not (rng.isascii() and rng.isdigit()):
        err.print("[red]--person must be BEN_NIR_PSA:BEN_RNG_GEM[/red]")
        raise typer.Exit(2)
    with session_scope(get_engine()) as s:
        story = person_story(session=s, campaign_id=campaign, ben_nir_psa=psa, ben_rng_gem=int(rng))
    if not story.found:
        out.print(
            f"{person} never entered {campaign} (see `relance explain` for the targeting)",
            markup=False,
        )
        raise typer.Exit(1)
    out.print(f"{person} in {campaign}: {story.status}", markup=False)
    for day, line in story.lines:
        out.print(f"  {day}  {line}")


@audit.command("verify")
def audit_verify() -> None:
    """Check the hash chain of the audit log; exit 1 at the first broken event."""
    with session_scope(get_engine()) as s:
        n, broken = verify(session=s)
    if broken is not None:
        err.print(f"[red]audit log broken at event {broken} (after {n - 1} good events)[/red]")
        raise typer.Exit(1)
    out.print(f"audit log intact: {n} events")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command(name="why")(why)
    app.add_typer(audit, name="audit")
