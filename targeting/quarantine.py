"""The quarantine report: every bad row of an extract, as CSV, written whole or not at all."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from targeting.extract import Problem
from targeting.files import write_atomic

COLUMNS = ("file", "line", "column", "severity", "reason", "person_key")


def default_path(output: Path) -> Path:
    """`<output>.quarantine.csv` beside the output (`targets.csv` → `targets.quarantine.csv`)."""
    return output.with_name(f"{output.stem}.quarantine.csv")


def render(problems: Sequence[Problem]) -> str:
    """The report as CSV text: one line per problem (`line` is the row for Parquet)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for p in problems:
        w.writerow(
            [
                p.file,
                "" if p.row is None else p.row,
                p.column or "",
                p.severity,
                p.reason,
                p.key or "",
            ]
        )
    return out.getvalue()


def write_report(path: Path, problems: Sequence[Problem]) -> None:
    """Write the report atomically (a header only when the extract has no problem)."""
    write_atomic(Path(path), render(problems).encode("utf-8"))
