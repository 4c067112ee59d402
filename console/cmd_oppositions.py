"""`relance oppositions import FILE`: oppositions from a file, all or nothing."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import typer
from rich.console import Console

from campaigns.clock import paris_today
from campaigns.ledger.db import get_engine, session_scope
from campaigns.policy.decision import OPPOSITION_CANALS, record_opposition
from targeting.identifiers import key_problem
from targeting.schema import PERSON_KEY

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
    """The rows of a CSV file, or every error as `ligne N, colonne C : pourquoi` (no value)."""
    rows: list[Row] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            return [], [f"ligne 1 : colonne(s) manquante(s) {', '.join(missing)}"]
        for rec in reader:
            line = reader.line_num
            bad = [(c, why) for c in PERSON_KEY if (why := key_problem(c, rec.get(c))) is not None]
            canal = (rec.get("canal") or "").strip()
            if canal not in OPPOSITION_CANALS:
                bad.append(("canal", "n'est pas l'un de " + ", ".join(OPPOSITION_CANALS)))
            on = today
            raw = (rec.get("opposed_on") or "").strip()
            if raw:
                try:
                    on = date.fromisoformat(raw)
                except ValueError:
                    bad.append(("opposed_on", "n'est pas une date (AAAA-MM-JJ)"))
            errors += [f"ligne {line}, colonne {c} : {why}" for c, why in bad]
            if not bad:
                psa, rng = ((rec.get(c) or "").strip() for c in PERSON_KEY)
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
    rows, errors = parse_file(path, paris_today())
    if errors:
        for e in errors:
            err.print(f"{path.name}, {e}", soft_wrap=True, markup=False, highlight=False)
        err.print(f"[red]rien n'est importé ({len(errors)} erreur(s))[/red]")
        raise typer.Exit(1)
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
    out.print(f"{len(rows)} ligne(s) lue(s), {added} opposition(s) enregistrée(s)")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.add_typer(oppositions, name="oppositions")
