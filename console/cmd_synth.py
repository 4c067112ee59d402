"""`relance synth`: synthetic SNDS-shaped extracts."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape


def synth(
    out: Path = typer.Option(..., "--out", help="Folder to create (must not exist or be empty)."),
    people: int = typer.Option(..., "--people", min=1, help="Number of insured."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    as_of: str = typer.Option(..., "--as-of", help="Extract date (YYYY-MM-DD)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
) -> None:
    """Write every table of a synthetic extract for N insured over the 8 échelons."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # heavy optional dependency: pyarrow, loaded when an extract is written.
    from targeting.files import OutputPathError, check_output_dir

    # heavy optional dependency: as above.
    from targeting.synth import write_extract

    console = Console(stderr=True)
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        console.print(f"[red]--as-of {escape(repr(as_of))} n'est pas une date (AAAA-MM-JJ)[/red]")
        raise typer.Exit(2) from None
    if fmt not in ("parquet", "csv"):
        console.print(f"[red]--format {escape(repr(fmt))} : utilisez parquet ou csv[/red]")
        raise typer.Exit(2)
    try:
        check_output_dir(out, option="--out")
    except OutputPathError as e:
        console.print(
            f"[red]erreur :[/red] {escape(str(e))}\nRien n'a été écrit.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    t0 = time.perf_counter()
    progress = Progress(
        TextColumn("synth"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} insured"),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            bar = progress.add_task("synth", total=people)
            counts = write_extract(
                out=out,
                people=people,
                seed=seed,
                as_of=day,
                fmt=fmt,
                progress=lambda done: progress.update(bar, completed=done),
            )
    except (FileExistsError, ValueError) as e:
        console.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as e:
        console.print(
            f"[red]erreur :[/red] --out {escape(str(out))} : écriture impossible ({e.strerror}) ; "
            "choisissez un autre dossier.\nRien n'a été écrit.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    for table, rows in counts.items():
        console.print(f"  {table:<17} {rows:>12,} lignes")
    console.print(f"Extrait écrit dans {out} en {time.perf_counter() - t0:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="synth")(synth)
