"""The results as files: CSV in French Excel's dialect and XLSX, one table per view."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from campaigns.app.results import LeadResults
from campaigns.clock import PARIS

# Columns holding a percentage (formatted as such in XLSX; values are in percent points).
PERCENT = {"objective_rate", "attainment", "projected"}


def french_number(v: float | int, digits: int = 0, signed: bool = False) -> str:
    """1234.5 → « 1 234,5 » (narrow no-break space for thousands, decimal comma)."""
    sign = "+" if signed else ""
    text = f"{v:{sign},.{digits}f}" if isinstance(v, float) else f"{v:{sign},d}"
    return text.replace(",", "\u202f").replace(".", ",")


def _csv_cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "oui" if v else "non"
    if isinstance(v, float):
        return f"{v:.1f}".replace(".", ",")  # no thousands separator: Excel reads it as a number
    if isinstance(v, datetime | date):
        return v.strftime("%d/%m/%Y")
    return str(v)


def views(res: LeadResults) -> Iterator[tuple[str, list[str], list[list[Any]], list[str]]]:
    """Each view: (sheet name, header, rows of raw values, column kinds: int/pct/text/date)."""
    cols = res.columns
    yield (
        "Résultats par échelon",
        [label for _, label in cols],
        [[getattr(r, k) for k, _ in cols] for r in res.table()],
        ["pct" if k in PERCENT else "text" if k in ("echelon", "name") else "int" for k, _ in cols],
    )
    yield ("Entonnoir", ["étape", "personnes"], [[k, n] for k, n in res.funnel], ["text", "int"])
    yield (
        "Effet de la campagne",
        [
            "échelon",
            "attribuées à l'appel",
            "au message ameli",
            "au courrier",
            "sans contact",
            "taux hors témoins %",
            "taux témoins %",
            "écart (points)",
            "conclusion",
        ],
        [
            [
                e.echelon,
                e.credited.get("phone", 0),
                e.credited.get("mailbox", 0),
                e.credited.get("letter", 0),
                e.credited.get("none", 0),
                None if e.uplift.rate_contacted is None else 100 * e.uplift.rate_contacted,
                None if e.uplift.rate_holdout is None else 100 * e.uplift.rate_holdout,
                None if e.uplift.difference is None else 100 * e.uplift.difference,
                e.uplift.explanation,
            ]
            for e in res.effects
        ],
        ["text", "int", "int", "int", "int", "pct", "pct", "num", "text"],
    )
    yield (
        "Historique des objectifs",
        ["date", "échelon", "objectif", "par", "note"],
        [[o.set_at, o.echelon, o.target, o.set_by, o.note or ""] for o in res.history],
        ["date", "text", "int", "text", "text"],
    )
    yield (
        "Définitions",
        ["chiffre", "définition"],
        [[k, v] for k, v in res.definitions.items()] + [["période", res.period.label()]],
        ["text", "text"],
    )


def paris_time(at: datetime, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A stored moment (naive means UTC: SQLite drops the zone) as Paris time, formatted."""
    return _paris(at).strftime(fmt)


def _paris(at: datetime) -> datetime:
    """A stored UTC moment as Paris wall-clock time (Excel knows no zones)."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return aware.astimezone(PARIS).replace(tzinfo=None)


def results_csv(res: LeadResults) -> bytes:
    """The échelon table as French Excel writes CSV: `;`, decimal comma, BOM, CRLF, JJ/MM/AAAA."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    _, header, rows, _ = next(views(res))
    w.writerow(header)
    for row in rows:
        w.writerow([_csv_cell(v) for v in row])
    return buf.getvalue().encode("utf-8-sig")


_FORMATS = {"int": "#,##0", "pct": '0.0" %"', "num": "+0.0;-0.0;0.0", "date": "DD/MM/YYYY"}


def results_xlsx(res: LeadResults) -> bytes:
    """One sheet per view: frozen bold header, numbers formatted, columns wide enough."""
    # heavy optional dependency: openpyxl is loaded only when a workbook is asked for
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    first = wb.active
    assert first is not None
    wb.remove(first)
    for name, header, rows, kinds in views(res):
        ws = wb.create_sheet(name[:31])
        ws.append(header)
        for c in ws[1]:
            c.font = Font(bold=True)
        for row in rows:
            ws.append([_paris(v) if isinstance(v, datetime) else v for v in row])
        ws.freeze_panes = "A2"
        for i, kind in enumerate(kinds, start=1):
            letter = get_column_letter(i)
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                if kind in _FORMATS and cell.value is not None:
                    cell.number_format = _FORMATS[kind]
            longest = max([len(str(header[i - 1]))] + [len(str(r[i - 1] or "")) for r in rows])
            ws.column_dimensions[letter].width = min(max(10, longest + 2), 60)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
