"""`relance oppositions import FILE`: oppositions from a file, all or nothing."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.console import Console

from campaigns.clock import paris_today

oppositions = typer.Typer(help="Oppositions to being contacted.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


@oppositions.command("import")
def import_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    source: str | None = typer.Option(None, help="Where the file comes from (recorded)."),
) -> None:
    """Record every opposition of a CSV file (ben_nir_psa, ben_rng_gem, canal[, opposed_on]).

    Nothing is recorded if any line is wrong: each error is printed with its line and column.
    An opposition dated today or earlier applies at once, at every contact point.
    """
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.app.oppositions import import_oppositions

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    with session_scope(get_engine()) as s:
        done = import_oppositions(
            session=s,
            actor=getpass.getuser(),
            path=path,
            today=paris_today(),
            source=source,
        )
    if done.errors:
        for e in done.errors:
            err.print(f"{path.name}, {e}", soft_wrap=True, markup=False, highlight=False)
        err.print(f"[red]rien n'est importé ({len(done.errors)} erreur(s))[/red]")
        raise typer.Exit(2)
    out.print(f"{done.rows} ligne(s) lue(s), {done.added} opposition(s) enregistrée(s)")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.add_typer(oppositions, name="oppositions")
