"""Every word the CLI prints is French: Typer's own help and errors, `why`, `explain`, the demo."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from campaigns.cascade.tick import tick
from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import DefinitionError
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Person
from campaigns.measurement.report import EchelonRow, echelon_report
from console.cli import app
from console.demo.command import render_report
from console.french import translate
from tests.extracts import D as EXPLAIN_DAY
from tests.test_services import CALL_DAY, D, setup
from tests.test_targeting import build

# Common English words (and Typer's own) that have no place in a French output; identifiers
# (command names, codes such as no_phone, option names) are removed before the scan.
ENGLISH = re.compile(
    r"\b(the|and|of|with|not|never|from|to|is|are|by|at|on|in|Usage|Show|exit|Commands|"
    r"Error|Missing|Invalid|such|Try|help|called|reached|enrolled|holdout|planned|done|sent|"
    r"failed|cancelled|deferred|entered|left|objective|attainment|eligible|priority|born|"
    r"renewal|declaration|opposed|days|death|period|under|known|none)\b"
)
IDENTIFIER = re.compile(r"(--?[\w-]+|\b\w+_\w+\b|`[^`]*`|/[\w./-]+|'[\w.-]+')")


def english(text: str) -> list[str]:
    """The English words left in a text once identifiers are set aside."""
    return sorted(set(ENGLISH.findall(IDENTIFIER.sub(" ", text))))


def test_the_scan_finds_english() -> None:
    text = "Usage: relance [OPTIONS] --dry-run — Show this message and exit. no_phone"
    assert english(text) == ["Show", "Usage", "and", "exit"]


def run(*args: str) -> str:
    return CliRunner().invoke(app, list(args)).output


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["why", "--help"],
        ["explain", "--help"],
        ["users", "--help"],
        ["nope"],
        ["why"],
        ["why", "--person", "X:1", "--bad"],
        ["explain", "sophia-ald8", "--extract", ".", "--as-of", "x"],
        ["why", "--person", "X", "--campaign", "sophia-ald8"],
    ],
)
def test_typer_speaks_french(args: list[str]) -> None:
    out = run(*args)
    assert english(out) == [], (english(out), out)
    assert out.strip(), args


def test_help_and_errors_in_french() -> None:
    out = " ".join(run("--help").split())
    assert "Utilisation : " in out and "[OPTIONS] COMMANDE [ARGUMENTS]..." in out
    assert "Afficher cette aide et quitter." in out and "Commandes" in out
    out = " ".join(run("why").split())
    assert "Option manquante : « --person »." in out and "why --help' pour l'aide" in out
    assert " ".join(run("nope").split()).count("Commande inconnue : « nope ».") == 1


def test_usage_errors_are_translated() -> None:
    assert translate("Invalid value for '--days': 'x' is not a valid integer.") == (
        "Valeur invalide pour « --days » : « x » n'est pas un nombre entier."
    )
    assert translate("Got unexpected extra argument (b)") == "Argument(s) en trop : b"


def test_why_speaks_french(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 3, telephone=None)
    tick(engine=engine, definition=D, today=CALL_DAY)
    from campaigns.measurement.why import why

    with session_scope(engine) as s:
        p = s.exec(select(Person)).first()
        assert p is not None
        story = why(session=s, campaign_id=D.id, ben_nir_psa=p.ben_nir_psa, ben_rng_gem=1)
        rows = echelon_report(session=s, campaign_id=D.id)
    text = "\n".join([story.status, *(line for _, line in story.lines)])
    assert english(text) == [], (english(text), text)
    # The demo's closing table, as printed.
    console = Console(width=200, record=True, file=open(tmp_path / "t.txt", "w"))  # noqa: SIM115
    console.print(render_report(rows, "titre", goal="adhésion à sophia"))
    table = console.export_text()
    assert "éligibles" in table and english(table) == [], (english(table), table)


def test_explain_evidence_speaks_french(tmp_path: Path) -> None:
    extract = build().write(tmp_path / "x", "parquet")
    base = ["explain", "sophia-ald8", "--extract", str(extract), "--as-of", str(EXPLAIN_DAY)]
    for person in ("OK:1", "DEAD:1"):
        out = run(*base, "--person", person)
        assert english(out) == [], (english(out), out)


def test_the_catalogue_error_is_french() -> None:
    with pytest.raises(DefinitionError) as e:
        campaign_by_id("nope")
    assert str(e.value).startswith("aucune campagne 'nope' dans ")
    assert english(str(e.value)) == []


_ = datetime.now(UTC)  # (a clock import kept for the reader: Paris dates are checked above)


def test_the_demo_table_shows_each_echelon_by_its_whole_name(tmp_path: Path) -> None:
    """At the width the demo prints with outside a terminal (140), no échelon nor header is
    cut, with figures of a demo's size (thousands) in every column."""
    from targeting.schema import ECHELONS

    rows = [EchelonRow(code, name, *[12_345] * 10) for code, name in sorted(ECHELONS.items())]
    console = Console(width=140, record=True, file=open(tmp_path / "t.txt", "w"))  # noqa: SIM115
    console.print(render_report(rows, "titre", goal="adhésion à sophia"))
    table = console.export_text()
    assert "…" not in table, table
    for code, name in ECHELONS.items():
        assert f"{code} {name}" in table, table
    for word in ("prioritaires", "messages", "ameli", "adhésion à", "sophia", "atteinte"):
        assert word in table, (word, table)
