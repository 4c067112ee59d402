"""`relance enrolments --campaign ID FILE`: a campaign's enrolment feed, credited to it only."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from campaigns.clock import paris_today

out, err = Console(), Console(stderr=True)


def enrolments(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    campaign: str = typer.Option(..., "--campaign", help="The campaign the rows are credited to."),
) -> None:
    """Ingest one enrolment file of a campaign (ben_nir_psa, ben_rng_gem, date[, canal]).

    The date column is the goal's `date_column` (date_adhesion by default) or `date`. Rows
    already known change nothing; a bad line is reported with its line and column and
    skipped. Each row is credited to this campaign only.
    """
    # heavy optional dependency: the stages load Prefect, the ledger and DuckDB.
    from campaigns.app import stages

    # heavy optional dependency: the campaign's definition (pydantic, Jinja2).
    from campaigns.definition.catalog import load_campaign

    # heavy optional dependency: as above.
    from campaigns.definition.goals import EnrolmentGoal

    # heavy optional dependency: as above.
    from campaigns.definition.model import DefinitionError

    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.ledger.db import get_engine

    try:
        c = load_campaign(campaign)
    except DefinitionError as e:
        err.print(f"[red]erreur :[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if not isinstance(c.definition.goal, EnrolmentGoal):
        err.print(
            f"[red]erreur :[/red] la campagne {escape(c.definition.id)} a pour objectif "
            f"« {c.definition.goal.kind} », constaté dans l'extrait : elle n'a pas de flux "
            "d'adhésions",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    done = stages.enrolment_stage(engine=get_engine(), campaign=c, files=[path], day=paris_today())
    for problem in done["errors"]:
        err.print(problem, soft_wrap=True, markup=False, highlight=False)
    out.print(
        f"{done['rows']} ligne(s) lue(s), {done['new']} nouvelle(s), "
        f"{done['members_closed']} membre(s) sorti(s) de la campagne "
        f"({len(done['errors'])} erreur(s))"
    )
    if done["errors"]:
        # Nothing readable at all (not UTF-8, no usable header): the file itself is to fix.
        raise typer.Exit(2 if done["rows"] == 0 else 1)


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command("enrolments")(enrolments)
