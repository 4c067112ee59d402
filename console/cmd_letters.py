"""`relance letters returns FILE`: import the print house's returned mail (NPAI)."""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

letters = typer.Typer(help="Postal letters: what the print house sends back.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def _actor() -> str:
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


@letters.command("returns")
def returns(
    file: Path = typer.Argument(..., help="CSV: key,returned_on,reason (NPAI, refused, …)"),
) -> None:
    """Mark the addresses of returned letters invalid; a bad file changes nothing (exit 2)."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.feedback.returns import ReturnsFileError, import_returns

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    try:
        data = file.read_bytes()
    except OSError as e:
        err.print(
            f"[red]{escape(str(file))} : lecture impossible ({e.strerror})[/red]", soft_wrap=True
        )
        raise typer.Exit(2) from None
    try:
        with session_scope(get_engine()) as s:
            report = import_returns(session=s, data=data, name=str(file), actor=_actor())
    except ReturnsFileError as e:
        for line in e.problems:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        err.print(f"[red]{len(e.problems)} problème(s) : rien n'est importé[/red]")
        raise typer.Exit(2) from None
    reasons = ", ".join(f"{k} {v}" for k, v in report.by_reason.items()) or "aucune"
    out.print(
        f"{report.lines} lettre(s) retournée(s) : {report.applied} importée(s) ({reasons}), "
        f"{report.already_imported} déjà importée(s), "
        f"{report.addresses_invalidated} adresse(s) marquée(s) invalide(s)",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.add_typer(letters, name="letters")
