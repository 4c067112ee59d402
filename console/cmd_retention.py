"""`relance retention [--apply] [--as-of DATE]`: the retention report, a dry run unless --apply."""

from __future__ import annotations

import getpass
from datetime import date, datetime

import typer
from rich.console import Console

from campaigns.clock import paris_today

out = Console()


def retention(
    apply: bool = typer.Option(False, "--apply", help="Anonymise (default: a dry run)."),
    as_of: datetime | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="The day of the run (default: today, Paris)."
    ),
) -> None:
    """People not enrolled 3 years after the last offer: count them, or anonymise them."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.app.retention import report_markdown, run_retention

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    day: date = as_of.date() if as_of else paris_today()
    with session_scope(get_engine()) as s:
        summary = run_retention(session=s, actor=getpass.getuser(), as_of=day, dry_run=not apply)
    out.print(report_markdown(summary), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="retention")(retention)
