"""Properties of the extract reader: valid extracts pass; one damage is reported where it is."""

from __future__ import annotations

import csv
import io
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targeting.extract import ExtractError, Problem, check_extract, open_extract
from targeting.schema import TABLES
from tests.extracts import Extract

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The tables `Extract.person` fills (one row per person each).
FILLED = ("ir_ben_r", "ir_imb_r", "ir_mtt_r", "contacts")
KEYED = ("ir_ben_r", "contacts")


@st.composite
def extracts(draw: st.DrawFn) -> Extract:
    """One to four people, each valid, with a few optional values varied."""
    keys = draw(
        st.lists(
            st.tuples(st.text("0123456789ABCDEF", min_size=1, max_size=16), st.integers(1, 3)),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    x = Extract()
    for psa, rng in keys:
        dead = draw(st.sampled_from([None, date(1600, 1, 1), date(2020, 5, 17)]))
        phone = draw(st.sampled_from([None, "+33612345678"]))
        line2 = draw(st.sampled_from([None, "APPARTEMENT 12", "É" * 38]))
        x.person(
            psa,
            rng,
            ben={"ben_dcd_dte": dead},
            contact={"telephone": phone, "adresse_l2": line2},
        )
    return x


def read(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def write(path: Path, rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue())


def nirs(x: Path) -> set[str]:
    rows = read(x / "contacts.csv")
    i = rows[0].index("nir")
    return {r[i] for r in rows[1:]}


@dataclass
class Expected:
    """Where the damage is: file, line (None: the file as a whole), column, words of the reason."""

    file: str
    line: int | None
    column: str | None
    words: str
    refused: bool = True


DAMAGES = (
    "drop_column",
    "add_column",
    "blank",
    "bad_date",
    "bad_int",
    "duplicate",
    "nir",
    "latin1",
    "semicolon",
    "empty",
    "header_only",
)


def damage(x: Path, kind: str, data: st.DataObject) -> Expected:
    """Apply one damage to the extract in folder x; say where it must be reported."""
    tables = {"duplicate": KEYED, "nir": ("contacts",), "bad_date": FILLED[:3]}
    table = data.draw(st.sampled_from(tables.get(kind, FILLED)), label="table")
    path = x / f"{table}.csv"
    name = path.name
    rows = read(path)
    header, body = rows[0], rows[1:]
    i = data.draw(st.integers(0, len(body) - 1), label="row")
    line = i + 2
    spec = TABLES[table]
    if kind == "drop_column":
        col = data.draw(st.sampled_from(spec.column_names), label="column")
        j = header.index(col)
        write(path, [r[:j] + r[j + 1 :] for r in rows])
        return Expected(name, None, col, "colonne manquante")
    if kind == "add_column":
        write(path, [[*header, "zz_unknown"], *([*r, "x"] for r in body)])
        return Expected(name, 1, "zz_unknown", "colonne inconnue", refused=False)
    if kind == "blank":
        cols = [c.name for c in spec.columns if not c.nullable]
        col = data.draw(st.sampled_from(cols), label="column")
        body[i][header.index(col)] = data.draw(st.sampled_from(["", "  "]))
        write(path, [header, *body])
        return Expected(name, line, col, "valeur vide dans une colonne obligatoire")
    if kind == "bad_date":
        cols = [c.name for c in spec.columns if c.type == "date"]
        col = data.draw(st.sampled_from(cols), label="column")
        bad = data.draw(st.sampled_from(["2023-02-30", "31/12/2023", "2023-13-01", "hier"]))
        body[i][header.index(col)] = bad
        write(path, [header, *body])
        return Expected(name, line, col, "n'est pas une date")
    if kind == "bad_int":
        cols = [c.name for c in spec.columns if c.type == "int"]
        col = data.draw(st.sampled_from(cols), label="column")
        body[i][header.index(col)] = data.draw(st.sampled_from(["4I", "1.5", "x", "1e3"]))
        write(path, [header, *body])
        return Expected(name, line, col, "n'est pas un nombre entier")
    if kind == "duplicate":
        write(path, [header, *body, list(body[i])])
        return Expected(name, len(body) + 2, "ben_nir_psa", f"vue d'abord ligne {line}")
    if kind == "nir":
        j = header.index("nir")
        nir = body[i][j]
        body[i][j] = nir[:-2] + f"{(int(nir[-2:]) + data.draw(st.integers(1, 96))) % 97:02d}"
        write(path, [header, *body])
        return Expected(name, line, "nir", "NIR invalide")
    if kind == "latin1":
        col = data.draw(st.sampled_from(["nom", "prenom"] if table == "contacts" else ["x"]))
        if table == "contacts":
            body[i][header.index(col)] = "HÉLÈNE"
        else:
            body[i][0] = body[i][0] + "é"  # a person key with an accent
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *body])
        path.write_bytes(out.getvalue().encode("latin-1"))
        # The whole file is latin-1: the first accent in it (maybe an earlier row's
        # address, "É" * 38) is where it stops being UTF-8.
        first = next(n for n, t in enumerate(out.getvalue().splitlines(), 1) if not t.isascii())
        return Expected(name, first, None, "pas en UTF-8")
    if kind == "semicolon":
        path.write_text(path.read_text().replace(",", ";"))
        return Expected(name, 1, None, "séparateur ';'")
    if kind == "empty":
        path.write_bytes(b"")
        return Expected(name, 1, None, "fichier vide")
    assert kind == "header_only"
    write(path, [header])
    return Expected(name, None, None, "", refused=False)


def located(problems: list[Problem]) -> list[tuple[str, int | None, str | None]]:
    return [(Path(p.file).name, p.row, p.column) for p in problems]


@SETTINGS
@given(extracts(), st.sampled_from(["csv", "parquet"]))
def test_valid_extracts_are_accepted(x: Extract, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = x.write(Path(d) / "x", fmt)
        assert check_extract(folder) == []
        with duckdb.connect() as con:
            assert set(open_extract(con, folder)) == set(TABLES)
            assert con.execute("SELECT count(*) FROM ir_ben_r").fetchall()[0][0] == len(
                x.rows["ir_ben_r"]
            )


@SETTINGS
@given(extracts(), st.sampled_from(DAMAGES), st.data())
def test_one_damage_is_reported_where_it_is(x: Extract, kind: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = x.write(Path(d) / "x")
        clean_nirs = nirs(folder)
        expected = damage(folder, kind, data)
        broken_nirs = nirs(folder) if kind in ("nir",) else set()

        problems = check_extract(folder)  # nothing but a list of problems comes out
        errors = [p for p in problems if p.severity == "error"]
        where = (expected.file, expected.line, expected.column)
        if kind == "header_only":
            assert problems == []
        else:
            hits = [p for p in problems if (Path(p.file).name, p.row, p.column) == where]
            assert hits, (where, located(problems))
            assert any(expected.words in p.reason for p in hits), [p.reason for p in hits]
            assert bool(errors) == expected.refused, problems
        # Every problem is in the damaged file: the other tables are untouched.
        assert {Path(p.file).name for p in problems} <= {expected.file}
        text = "\n".join(f"{p} {p.key}" for p in problems)
        for nir in clean_nirs | broken_nirs:
            assert nir not in text

        with duckdb.connect() as con:
            if expected.refused:
                with pytest.raises(ExtractError) as e:
                    open_extract(con, folder)
                assert e.value.problems == problems
                assert str(e.value) == str(errors[0])
            else:
                open_extract(con, folder)


def test_many_problems_are_capped_and_counted(tmp_path: Path) -> None:
    x = Extract()
    for n in range(30):
        x.person(f"P{n}", ben={"ben_sex_cod": "deux"})
    folder = x.write(tmp_path / "x")
    problems = check_extract(folder, ["ir_ben_r"], cap=10)
    assert [p.row for p in problems[:10]] == list(range(2, 12))
    assert all(
        p.column == "ben_sex_cod" and p.reason == "n'est pas un nombre entier"
        for p in problems[:10]
    )
    assert [p.key for p in problems[:2]] == ["P0:1", "P1:1"]
    assert problems[10].reason == "… et 20 autres problèmes" and len(problems) == 11


def test_ragged_rows_are_reported_by_line_without_their_content(tmp_path: Path) -> None:
    folder = Extract().person("A").person("B").person("C").write(tmp_path / "x")
    p = folder / "contacts.csv"
    lines = p.read_text().splitlines()
    nir = lines[2].split(",")[2]
    lines[2] += ",surplus"
    lines[3] = ",".join(lines[3].split(",")[:5])
    p.write_text("\n".join(lines) + "\n")
    problems = check_extract(folder, ["contacts"])
    assert [(p.row, p.severity) for p in problems] == [(3, "error"), (4, "error")]
    assert "trop de colonnes" in problems[0].reason and "colonnes manquantes" in problems[1].reason
    assert all(nir not in str(p) for p in problems)


def test_long_address_line_is_a_warning_only(tmp_path: Path) -> None:
    folder = (
        Extract()
        .person("A")
        .person("B", contact={"adresse_l4": "12 RUE DU FAUBOURG SAINT-HONORE PROLONG"})
        .write(tmp_path / "x")
    )
    problems = check_extract(folder)
    assert [(p.row, p.column, p.severity, p.key) for p in problems] == [
        (3, "adresse_l4", "warning", "B:1")
    ]
    assert problems[0].reason == "la ligne d'adresse 4 a 39 caractères, au plus 38"
    with duckdb.connect() as con:
        open_extract(con, folder)
