"""Oppositions from a file: every line checked (all or nothing), then each recorded by the rule."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlmodel import Session

from campaigns.policy.decision import OPPOSITION_CANALS, record_opposition
from targeting.identifiers import key_problem
from targeting.schema import PERSON_KEY

COLUMNS = ("ben_nir_psa", "ben_rng_gem", "canal")  # and, optionally, opposed_on (ISO date)


@dataclass(frozen=True)
class Row:
    """One opposition read from a file."""

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


def record_rows(*, session: Session, rows: list[Row], source: str) -> int:
    """Record each row by the policy's rule; how many oppositions were added or moved earlier."""
    return sum(
        record_opposition(
            session,
            ben_nir_psa=r.ben_nir_psa,
            ben_rng_gem=r.ben_rng_gem,
            canal=r.canal,
            on=r.opposed_on,
            source=source,
        )
        for r in rows
    )
