"""Misplaced identifiers: every reader refuses them, and none reaches the ledger, a log or a screen.

Each reader is fed real-shaped NIRs, phone numbers and e-mails in its key columns (and rows
shifted by one column); then the ledger (every column of every table, read raw), the quarantine
report, the captured logs, the CLI's output and Prefect's own database are searched for them.
"""

from __future__ import annotations

import csv
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel
from stdnum.fr import nir as nir_check
from typer.testing import CliRunner

from campaigns.cascade.enrolments import ingest_enrolment_file
from campaigns.feedback.returns import ReturnsFileError, import_returns
from campaigns.ledger.db import session_scope
from campaigns.policy.decision import record_opposition
from console.cli import app
from targeting.extract import check_extract
from tests.extracts import Extract
from tests.factories import valid_nir

AS_OF = date(2026, 3, 2)


def _nir_2a(order: int) -> str:
    body = f"290122A123{order:03d}"
    return body + f"{97 - int(body.replace('2A', '19')) % 97:02d}"


NIR = [valid_nir(500 + i, 1 + i % 2) for i in range(8)]
NIR_GROUPED = " ".join(
    [NIR[7][0], NIR[7][1:3], NIR[7][3:5], NIR[7][5:7], NIR[7][7:10], NIR[7][10:13], NIR[7][13:]]
)
NIR_2A = _nir_2a(417)
NIR_13 = valid_nir(777)[:13]
PHONE = [f"06{41_000_000 + i * 1_111:08d}" for i in range(6)]
PHONE_SPACED = "07 61 23 45 89"
PHONE_INTL = "+33 7 61 23 45 98"
EMAIL = [f"jeanne.martin{i}@exemple.fr" for i in range(6)]
PLANTED = [*NIR, NIR_GROUPED, NIR_2A, NIR_13, *PHONE, PHONE_SPACED, PHONE_INTL, *EMAIL]
assert all(nir_check.is_valid(n) for n in NIR)


def needles(values: Iterable[str]) -> set[str]:
    """Each value as written, without separators, and (all digits) as the integer it reads as."""
    out = set()
    for v in values:
        compact = re.sub(r"[\s.()-]", "", v)
        out |= {v, compact}
        if compact.isdigit():
            out.add(str(int(compact)))
    return out


NEEDLES = needles(PLANTED)


def leaks(where: str, *texts: object, more: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(where, value) for each planted value (or one of `more`) found in the texts."""
    blob = "\n".join(str(t) for t in texts)
    return [(where, n) for n in sorted(NEEDLES | needles(more)) if n in blob]


def assert_no_leak(*found: list[tuple[str, str]]) -> None:
    """Fail naming every place where a planted value was found, and the values."""
    where: dict[str, list[str]] = {}
    for place, value in (f for group in found for f in group):
        where.setdefault(place, []).append(value)
    assert not where, "; ".join(f"{k}: {len(v)} ({', '.join(v)})" for k, v in where.items())


def ledger_text(engine: Engine) -> str:
    """Every row of every table as stored (no decryption: the columns are read raw)."""
    rows = []
    with engine.connect() as c:
        for t in SQLModel.metadata.sorted_tables:
            rows += [repr(tuple(r)) for r in c.execute(text(f'SELECT * FROM "{t.name}"'))]
    return "\n".join(rows)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of every logger, Prefect's included (they do not all propagate)."""
    caplog.set_level(logging.DEBUG)
    prefect = logging.getLogger("prefect")
    prefect.addHandler(caplog.handler)
    yield caplog
    prefect.removeHandler(caplog.handler)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


@pytest.fixture
def cli_db(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The CLI and the flows pointed at the test's database (SQLite or PostgreSQL)."""
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()


# --- extracts ---------------------------------------------------------------------------------


def _edit(path: Path, line: int, column: str, value: str) -> None:
    rows = list(csv.reader(path.open(newline="")))
    rows[line - 1][rows[0].index(column)] = value
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def planted_extract(folder: Path, fmt: str) -> tuple[set[tuple[str, int, str]], set[str]]:
    """An extract with identifiers in key cells; where each must be reported; its contact NIRs."""
    x = (
        Extract()
        .person(NIR[0])  # line 2 of every person table
        .person("P1", PHONE[0])  # type: ignore[arg-type]
        .person(EMAIL[0])
        .person(NIR_GROUPED)
        .person("P4", NIR_13)  # type: ignore[arg-type]
        .person("P5")  # line 7: identifiers in other columns
        .person("P6")  # line 8: the contact row shifted by one column
        .care(NIR_2A, date(2025, 6, 1))
        .add("sophia_adhesions", ben_nir_psa=PHONE_SPACED, ben_rng_gem=1, date_adhesion=AS_OF)
        .add("oppositions", ben_nir_psa="P7", ben_rng_gem=PHONE_INTL, date_opposition=AS_OF)
        .add("oppositions", ben_nir_psa=EMAIL[1], ben_rng_gem=1, date_opposition=AS_OF)
    )
    for r in x.rows["oppositions"]:
        r["canal"] = "all"
    x.write(folder)
    _edit(folder / "ir_imb_r.csv", 7, "imb_ald_dtf", NIR[1])
    _edit(folder / "ir_mtt_r.csv", 7, "mtt_dep_dte", PHONE[1])
    _edit(folder / "ir_ben_r.csv", 7, "ben_nai_ann", EMAIL[2])
    contacts = folder / "contacts.csv"
    rows = list(csv.reader(contacts.open(newline="")))
    rows[7] = [*rows[7][1:], ""]  # ben_nir_psa lost: the NIR lands in ben_rng_gem
    with contacts.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    expected = {
        (t, line, c)
        for t in ("ir_ben_r", "ir_imb_r", "ir_mtt_r", "contacts")
        for line, c in (
            (2, "ben_nir_psa"),
            (3, "ben_rng_gem"),
            (4, "ben_nir_psa"),
            (5, "ben_nir_psa"),
            (6, "ben_rng_gem"),
        )
    } | {
        ("ir_imb_r", 7, "imb_ald_dtf"),
        ("ir_mtt_r", 7, "mtt_dep_dte"),
        ("ir_ben_r", 7, "ben_nai_ann"),
        ("contacts", 8, "ben_rng_gem"),
        ("er_prs_f", 2, "ben_nir_psa"),
        ("sophia_adhesions", 2, "ben_nir_psa"),
        ("oppositions", 2, "ben_rng_gem"),
        ("oppositions", 3, "ben_nir_psa"),
    }
    nirs = {r[rows[0].index("nir")] for r in rows[1:]}
    if fmt == "parquet":
        for p in folder.glob("*.csv"):
            names = next(csv.reader(p.open()))
            types = pv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
            pq.write_table(pv.read_csv(p, convert_options=types), p.with_suffix(".parquet"))
            p.unlink()
        expected = {(t, line - 1, c) for t, line, c in expected}  # Parquet: the row, from 1
    suffix = f".{fmt}"
    return {(t + suffix, line, c) for t, line, c in expected}, nirs


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_extract_checker_refuses_identifiers_in_keys_and_never_shows_them(
    tmp_path: Path, fmt: str, logs: pytest.LogCaptureFixture
) -> None:
    expected, contact_nirs = planted_extract(tmp_path / "x", fmt)
    problems = check_extract(tmp_path / "x")
    out = tmp_path / "out" / "targets.csv"
    out.parent.mkdir()
    args = ["target", "sophia-ald8", "--extract", str(tmp_path / "x"), "--as-of", "2026-03-02"]
    r = CliRunner().invoke(app, [*args, "--output", str(out)])
    report = (out.parent / "targets.quarantine.csv").read_text()
    assert_no_leak(
        leaks("problems", *problems, *(p.key for p in problems), more=contact_nirs),
        leaks("quarantine report", report, more=contact_nirs),
        leaks("cli output", r.output, more=contact_nirs),
        leaks("logs", logged(logs), more=contact_nirs),
    )
    found = {(Path(p.file).name, p.row, p.column) for p in problems if p.severity == "error"}
    assert expected <= found, sorted(expected - found)
    assert r.exit_code == 2, r.output
    assert "ressemble à un NIR" in report and "ressemble à un numéro de téléphone" in report


def test_a_nir_typed_as_an_integer_in_parquet_is_refused(tmp_path: Path) -> None:
    folder = Extract().person("P1").person("P2").write(tmp_path / "x", "parquet")
    t = pq.read_table(folder / "ir_ben_r.parquet")
    psa = pa.array([int(NIR[0]), 12345], pa.int64())
    t = t.set_column(t.schema.get_field_index("ben_nir_psa"), "ben_nir_psa", psa)
    pq.write_table(t, folder / "ir_ben_r.parquet")
    problems = check_extract(folder, ["ir_ben_r"])
    assert [(p.row, p.column, p.reason) for p in problems] == [
        (1, "ben_nir_psa", "ressemble à un NIR")
    ]
    assert_no_leak(leaks("problems", *problems, *(p.key for p in problems)))


# --- the enrolment feed -----------------------------------------------------------------------

FEED = [
    "ben_nir_psa,ben_rng_gem,date_adhesion,canal",
    "GOOD1,1,2026-03-02,online",
    f"{NIR[2]},1,2026-03-02,online",
    f'"{NIR_GROUPED}",1,2026-03-02,paper',
    f"P1,{PHONE[2]},2026-03-02,online",
    f'P2,"{PHONE_SPACED}",2026-03-02,online',
    f"{EMAIL[3]},1,2026-03-02,doctor",
    f"P3,1,{NIR[3]},online",
    f"P4,1,2026-03-02,{EMAIL[4]}",
    f"1,{NIR_2A},2026-03-02",  # shifted: the key's first half lost
    f"{NIR_13},2026-03-02,online,",
    f'"{PHONE_INTL}",2,2026-03-02,phone',
]


def prefect_db_text() -> str:
    """Every row of every table of the harness's Prefect database (logs, artifacts, runs)."""
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    APILogHandler().flush()  # sends the queued logs and waits
    path = PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1]
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            repr(row) for t in tables for row in con.execute(f'SELECT * FROM "{t}"').fetchall()
        )
    finally:
        con.close()


def test_enrolment_feed_refuses_identifiers_and_never_stores_or_logs_them(
    prefect_harness: None, cli_db: Engine, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    from flows.daily import enrolment_feed

    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "enrolments.csv").write_text("\n".join(FEED) + "\n")
    with session_scope(cli_db) as s:
        rep = ingest_enrolment_file(
            session=s, path=feeds / "enrolments.csv", campaign_id="sophia-ald8", programme="sophia"
        )
    flow = enrolment_feed(campaign_id="sophia-ald8", feed_dir=str(feeds), day=AS_OF)
    prefect = ""
    for _ in range(50):  # the server writes the logs it receives in the background
        prefect = prefect_db_text()
        if "lignes rejetées" in prefect:
            break
        time.sleep(0.2)
    assert "lignes rejetées" in prefect, "no Prefect log found: the scan would prove nothing"
    assert_no_leak(
        leaks("report", rep),
        leaks("flow result", flow),
        leaks("ledger", ledger_text(cli_db)),
        leaks("logs", logged(logs)),
        leaks("prefect database", prefect),
    )
    assert (rep.rows, rep.new, flow["rows"], flow["new"]) == (len(FEED) - 1, 1, len(FEED) - 1, 0)
    assert sorted({int(e.split(", ")[1].split()[1]) for e in rep.errors}) == list(
        range(3, len(FEED) + 1)
    )


# --- oppositions ------------------------------------------------------------------------------

OPPOSITIONS = [
    f"{NIR[4]},1,all,",
    f'"{NIR_GROUPED}",2,letter,',
    f"P1,{PHONE[3]},phone,",
    f"{EMAIL[5]},1,email,",
    f"P2,1,{NIR[5]},",
    f"P3,1,all,{PHONE[4]}",
    f"1,{NIR[6]},all",  # shifted
    f"{NIR_2A},1,mailbox,",
]


def test_oppositions_import_refuses_identifiers_and_never_stores_or_shows_them(
    cli_db: Engine, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    outputs, accepted = [], []
    for i, row in enumerate(OPPOSITIONS):
        f = tmp_path / f"oppositions_{i}.csv"
        f.write_text(f"ben_nir_psa,ben_rng_gem,canal,opposed_on\n{row}\n")
        r = CliRunner().invoke(app, ["oppositions", "import", str(f)])
        if r.exit_code == 0 or "ligne 2, colonne" not in r.output:
            accepted.append(row)
        outputs.append(r.output)
    errors = []
    for psa, rng in [(NIR[4], 1), ("P1", int(PHONE[3])), (EMAIL[5], 1), (NIR_2A, 1)]:
        with session_scope(cli_db) as s:
            try:
                record_opposition(
                    s, ben_nir_psa=psa, ben_rng_gem=rng, canal="all", on=AS_OF, source="t"
                )
            except ValueError as e:
                errors.append(str(e))
            else:
                accepted.append(f"record_opposition({psa!r}, {rng})")
    assert_no_leak(
        leaks("cli output", *outputs),
        leaks("service errors", *errors),
        leaks("ledger", ledger_text(cli_db)),
        leaks("logs", logged(logs)),
    )
    assert accepted == []


# --- returned mail ----------------------------------------------------------------------------

RETURNS = [
    f"{NIR[0]},2026-06-20,NPAI",
    f'"{NIR_GROUPED}",2026-06-20,NPAI',
    f"{PHONE[5]},2026-06-20,NPAI",
    f"{EMAIL[0]},2026-06-20,refused",
    f"k1,{NIR[1]},NPAI",
    f"k2,2026-06-20,{EMAIL[1]}",
    f"2026-06-20,NPAI,{NIR_13}",  # shifted
    f'k3,"{PHONE_SPACED}",other',
]


def test_returns_import_refuses_identifiers_and_never_shows_them(
    cli_db: Engine, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    data = ("key,returned_on,reason\n" + "\n".join(RETURNS) + "\n").encode()
    with session_scope(cli_db) as s, pytest.raises(ReturnsFileError) as e:
        import_returns(session=s, data=data, name="returns.csv", actor="t")
    headless = f"{NIR[2]},2026-06-20,NPAI\n{EMAIL[2]},2026-06-20,NPAI\n".encode()
    with session_scope(cli_db) as s, pytest.raises(ReturnsFileError) as e2:
        import_returns(session=s, data=headless, name="headless.csv", actor="t")
    outputs = []
    for name, content in (("returns.csv", data), ("headless.csv", headless)):
        f = tmp_path / name
        f.write_bytes(content)
        r = CliRunner().invoke(app, ["letters", "returns", str(f)])
        assert r.exit_code == 2, r.output
        outputs.append(r.output)
    assert_no_leak(
        leaks("service errors", *e.value.problems, *e2.value.problems),
        leaks("cli output", *outputs),
        leaks("ledger", ledger_text(cli_db)),
        leaks("logs", logged(logs)),
    )
    lines = {int(p.split(", ")[1].split()[1]) for p in e.value.problems}
    assert lines == set(range(2, len(RETURNS) + 2))
