"""`relance oppositions import FILE`: oppositions from a file, all or nothing."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import typer
from rich.console import Console

from campaigns.clock import PARIS, utcnow
from campaigns.db import get_engine, session_scope
from campaigns.policy import OPPOSITION_CANALS, record_opposition

oppositions = typer.Typer(help="Oppositions to being contacted.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)

COLUMNS = ("ben_nir_psa", "ben_rng_gem", "canal")  # and, optionally, opposed_on (ISO date)


@dataclass(frozen=True)
class Row:
    ben_nir_psa: str
    ben_rng_gem: int
    canal: str
    opposed_on: date


def parse_file(path: Path, today: date) -> tuple[list[Row], list[str]]:
    """The rows of a CSV file, or every error as `line N, column C: what`."""
    rows: list[Row] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            return [], [f"line 1: missing column(s) {', '.join(missing)}"]
        for rec in reader:
            line = reader.line_num
            bad = len(errors)
            psa = (rec.get("ben_nir_psa") or "").strip()
            if not psa:
                errors.append(f"line {line}, column ben_nir_psa: empty")
            rng = (rec.get("ben_rng_gem") or "").strip()
            if not (rng.isascii() and rng.isdigit()):
                errors.append(f"line {line}, column ben_rng_gem: {rng!r} is not a number")
            canal = (rec.get("canal") or "").strip()
            if canal not in OPPOSITION_CANALS:
                errors.append(
                    f"line {line}, column canal: {canal!r} is not one of "
                    + ", ".join(OPPOSITION_CANALS)
                )
            on = today
            raw = (rec.get("opposed_on") or "").strip()
            if raw:
                try:
                    on = date.fromisoformat(raw)
                except ValueError:
                    errors.append(f"line {line}, column opposed_on: {raw!r} is not a date")
            if len(errors) == bad:
                rows.append(Row(psa, int(rng), canal, on))
    return rows, errors


@oppositions.command("import")
def import_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    source: str | None = typer.Option(None, help="Where the file comes from (recorded)."),
) -> None:
    """Record every opposition of a CSV file (ben_nir_psa, ben_rng_gem, canal[, opposed_on]).

    Nothing is recorded if any line is wrong: each error is printed with its line and column.
    An opposition dated today or earlier applies at once, at every contact point.
    """
    try:
        rows, errors = parse_file(path, utcnow().astimezone(PARIS).date())
    except UnicodeDecodeError:
        rows, errors = [], ["not UTF-8 text: save the file as UTF-8 CSV"]
    except csv.Error as bad:
        rows, errors = [], [f"not a readable CSV file ({bad})"]
    if errors:
        for e in errors:
            err.print(f"{path.name}: {e}", soft_wrap=True, markup=False, highlight=False)
        err.print(f"[red]nothing imported ({len(errors)} error(s))[/red]")
        raise typer.Exit(2)
    with session_scope(get_engine()) as s:
        added = sum(
            record_opposition(
                s,
                ben_nir_psa=r.ben_nir_psa,
                ben_rng_gem=r.ben_rng_gem,
                canal=r.canal,
                on=r.opposed_on,
                source=source or f"file {path.name}",
            )
            for r in rows
        )
    out.print(f"{len(rows)} line(s) read, {added} opposition(s) recorded")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.add_typer(oppositions, name="oppositions")
