"""`relance target`: run a campaign's targeting rule over an extract."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from targeting.extract import Problem

_SHOWN = 5  # problems named on stderr; the report has them all


def target(
    campaign: str = typer.Argument(
        ..., help="Campaign id (sophia-ald8), or a folder as a path (./folder)."
    ),
    extract: Path = typer.Option(..., "--extract", help="Folder of <table>.parquet or .csv."),
    as_of: str = typer.Option(..., "--as-of", help="Run date D (YYYY-MM-DD)."),
    output: Path = typer.Option(..., "--output", help="CSV file to write."),
    include_ineligible: bool = typer.Option(
        False, "--include-ineligible", help="One row per person of ir_ben_r, with reasons."
    ),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb (one machine) or spark."),
    spark_master: str = typer.Option(
        "local[2]", "--spark-master", help="Spark master URL (spark://…, yarn, k8s://…)."
    ),
    quarantine: Path | None = typer.Option(
        None,
        "--quarantine",
        help="CSV report of every bad row (default: <output>.quarantine.csv; DuckDB engine).",
    ),
) -> None:
    """Write who the campaign targets at the run date, with priority, care gaps and reasons."""
    import pyarrow.compute as pc

    # heavy optional dependency: the campaign's definition (pydantic, Jinja2) loads on run.
    from campaigns.definition.catalog import load_campaign

    # heavy optional dependency: as above.
    from campaigns.definition.model import DefinitionError

    # heavy optional dependency: DuckDB and pyarrow load only when a rule runs.
    from targeting.engine import run_targeting, table_specs, tables_needed, write_csv_atomic

    # heavy optional dependency: as above.
    from targeting.extract import ExtractError, check_extract

    # heavy optional dependency: as above.
    from targeting.files import OutputPathError, check_output

    # heavy optional dependency: as above.
    from targeting.quarantine import default_path, write_report

    console = Console(stderr=True)
    t0 = time.perf_counter()
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        console.print(f"[red]--as-of {escape(repr(as_of))} n'est pas une date (AAAA-MM-JJ)[/red]")
        raise typer.Exit(2) from None
    if engine not in ("duckdb", "spark"):
        console.print(f"[red]--engine {escape(repr(engine))} : utilisez duckdb ou spark[/red]")
        raise typer.Exit(2)
    report = quarantine or default_path(output)
    try:
        loaded = load_campaign(campaign)
        inputs = [extract, loaded.folder]
        check_output(output, option="--output", inputs=inputs)
        if engine == "duckdb":
            check_output(report, option="--quarantine", inputs=[*inputs, output])
        rule = loaded.definition.targeting
        if engine == "duckdb":
            problems = check_extract(extract, tables_needed(rule), specs=table_specs(rule))
            write_report(report, problems)
            if any(p.severity == "error" for p in problems):
                _refuse(console, problems, report)
            if problems:
                console.print(
                    f"[yellow]{len(problems):,} avertissements[/yellow] (courrier) → {report}"
                )
        if engine == "spark":
            # pyspark (and a JVM) load only when Spark is asked for.
            from targeting.spark import run_targeting_spark

            table = run_targeting_spark(
                rule=rule,
                extract=str(extract),
                as_of=day,
                include_ineligible=include_ineligible,
                master=spark_master,
            )
        else:
            table = run_targeting(
                rule=rule, extract=extract, as_of=day, include_ineligible=include_ineligible
            )
        write_csv_atomic(table, output)
    except (ExtractError, DefinitionError, OutputPathError, FileNotFoundError, KeyError) as e:
        console.print(
            f"[red]erreur :[/red] {escape(str(e))}\nRien n'a été écrit.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    except OSError as e:
        console.print(
            f"[red]erreur :[/red] {escape(str(output))} : écriture impossible ({e.strerror}) ; "
            "choisissez un autre fichier.\nRien n'a été écrit.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    eligible = int(pc.sum(table["eligible"]).as_py() or 0)
    priority = int(pc.sum(table["priority"]).as_py() or 0)
    console.print(
        f"{eligible:,} éligibles, {priority:,} prioritaires ({table.num_rows:,} lignes) → {output} "
        f"en {time.perf_counter() - t0:.1f} s"
    )


def _refuse(console: Console, problems: list[Problem], report: Path) -> None:
    """Name the first errors and the report, exit 2: the output is not written."""
    errors = [p for p in problems if p.severity == "error"]
    for p in errors[:_SHOWN]:
        console.print(f"[red]erreur :[/red] {escape(str(p))}", highlight=False, soft_wrap=True)
    more = f" (et {len(errors) - _SHOWN:,} autres)" if len(errors) > _SHOWN else ""
    console.print(
        f"{len(errors):,} erreurs{more} ; chaque ligne fautive est dans {report}\n"
        "Rien n'a été écrit.",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="target")(target)
