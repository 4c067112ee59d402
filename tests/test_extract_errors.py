"""Bad extracts: a clear error naming the file, row and column; the CLI exits 2, writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from campaigns.definition.catalog import load_campaign
from console.cli import app
from targeting.engine import run_targeting
from targeting.extract import ExtractError
from tests.extracts import D, Extract

RULE = load_campaign("sophia-ald8").definition.targeting


def good(tmp: Path, fmt: str = "csv") -> Path:
    return Extract().person("A").person("B").write(tmp / "x", fmt)


def edit_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


def error(x: Path) -> ExtractError:
    with pytest.raises(ExtractError) as e:
        run_targeting(rule=RULE, extract=x, as_of=D)
    return e.value


def test_missing_table(tmp_path: Path) -> None:
    x = good(tmp_path)
    (x / "ir_mtt_r.csv").unlink()
    e = error(x)
    assert "table ir_mtt_r manquante" in str(e) and e.file.endswith("ir_mtt_r.parquet")


def test_missing_column(tmp_path: Path) -> None:
    x = good(tmp_path)
    p = x / "ir_imb_r.csv"
    p.write_text(p.read_text().replace("imb_etm_nat", "imb_etm"))
    e = error(x)
    assert (Path(e.file).name, e.column) == ("ir_imb_r.csv", "imb_etm_nat")
    assert "colonne manquante" in str(e)


def test_unparsable_date_names_line_and_column(tmp_path: Path) -> None:
    x = good(tmp_path)
    edit_line(x / "ir_imb_r.csv", 3, "2026-04-15", "2026-02-30")
    e = error(x)
    assert str(e) == f"{x / 'ir_imb_r.csv'}, ligne 3, colonne imb_ald_dtf : " + (
        "n'est pas une date (AAAA-MM-JJ)"
    )


def test_unparsable_integer_in_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = good(tmp_path, "parquet")
    t = pq.read_table(x / "ir_imb_r.parquet")
    col = pa.array(["41", "4I"])
    t = t.set_column(t.schema.get_field_index("imb_etm_nat"), "imb_etm_nat", col)
    pq.write_table(t, x / "ir_imb_r.parquet")
    e = error(x)
    assert (e.row, e.column) == (2, "imb_etm_nat") and "enregistrement 2" in str(e)


def test_invalid_nir_is_reported_without_its_value(tmp_path: Path) -> None:
    x = good(tmp_path)
    p = x / "contacts.csv"
    nir = p.read_text().splitlines()[2].split(",")[2]
    bad = nir[:-2] + f"{(int(nir[-2:]) + 1) % 97:02d}"
    edit_line(p, 3, nir, bad)
    e = error(x)
    assert (e.row, e.column) == (3, "nir") and "mauvaise clé de contrôle" in str(e)
    assert bad not in str(e) and nir not in str(e)


def test_empty_required_value(tmp_path: Path) -> None:
    x = good(tmp_path)
    edit_line(x / "ir_ben_r.csv", 2, ",93,", ",,")
    e = error(x)
    assert (e.row, e.column) == (2, "ben_res_dpt") and "valeur vide" in str(e)


def test_duplicated_person_key(tmp_path: Path) -> None:
    x = good(tmp_path)
    p = x / "ir_ben_r.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join([*lines, lines[1]]) + "\n")
    e = error(x)
    assert (e.row, e.column) == (4, "ben_nir_psa") and "répétée (vue d'abord ligne 2)" in str(e)


def test_cli_writes_the_csv(tmp_path: Path) -> None:
    x = good(tmp_path)
    out = tmp_path / "out" / "targets.csv"
    out.parent.mkdir()
    r = CliRunner().invoke(
        app,
        [
            "target",
            "sophia-ald8",
            "--extract",
            str(x),
            "--as-of",
            "2026-03-02",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0] == (
        "ben_nir_psa,ben_rng_gem,eligible,priority,gap_renal,gap_dental,gap_fundus,"
        "ald_end_date,echelon,reasons"
    )
    assert lines[1].startswith("A,1,true,true,true,true,true,2026-04-15,93,")
    assert len(lines) == 3


def test_cli_bad_extract_exit_2_and_nothing_written(tmp_path: Path) -> None:
    x = good(tmp_path)
    edit_line(x / "ir_ben_r.csv", 3, "1958", "19x8")
    out = tmp_path / "targets.csv"
    out.write_text("previous run\n")
    r = CliRunner().invoke(
        app,
        [
            "target",
            "sophia-ald8",
            "--extract",
            str(x),
            "--as-of",
            "2026-03-02",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 2
    assert out.read_text() == "previous run\n"
    assert list(tmp_path.glob(".targets.csv*")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2026-13-01"], "n'est pas une date"),
        (
            ["--as-of", "2026-03-02", "--extract", "/nonexistent"],
            "dossier d'extraction introuvable",
        ),
    ],
)
def test_cli_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    x = good(tmp_path)
    base = ["target", "sophia-ald8", "--extract", str(x), "--output", str(tmp_path / "o.csv")]
    r = CliRunner().invoke(app, base + args)
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            lambda t: t.replace(",", ";").encode(),
            "ligne 1 : séparateur ';' : les colonnes sont séparées par ','",
        ),
        (
            lambda t: t.replace("MARTIN", "MARTÈNE").encode("latin-1"),
            "ligne 2 : pas en UTF-8 (octet 0xC8)",
        ),
        (lambda t: b"", "ligne 1 : fichier vide : une ligne d'en-tête est attendue"),
    ],
)
def test_badly_encoded_or_delimited_csv(tmp_path: Path, damage: Any, expected: str) -> None:
    x = good(tmp_path)
    p = x / "contacts.csv"
    p.write_bytes(damage(p.read_text()))
    assert expected in str(error(x))
