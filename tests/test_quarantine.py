"""`relance target` with a bad extract: every bad row in the quarantine report, nothing else."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from console.cli import app
from tests.extracts import Extract


def run(x: Path, out: Path, *extra: str) -> tuple[int, str]:
    args = ["target", "sophia-ald8", "--extract", str(x), "--as-of", "2026-03-02"]
    r = CliRunner().invoke(app, [*args, "--output", str(out), *extra])
    return r.exit_code, r.output


def damaged(tmp: Path) -> tuple[Path, str]:
    """Four people; a bad date, an empty value, a repeated key, a wrong NIR key, a long line."""
    x = (
        Extract()
        .person("A")
        .person("B", contact={"adresse_l4": "X" * 40})
        .person("C")
        .person("D")
        .write(tmp / "x")
    )
    edits = {
        ("ir_imb_r.csv", 3): ("2026-04-15", "2026-02-30"),
        ("ir_ben_r.csv", 2): (",93,", ",,"),
        ("ir_mtt_r.csv", 5): ("2015-01-01", "01/01/2015"),
    }
    for (name, line), (old, new) in edits.items():
        p = x / name
        lines = p.read_text().splitlines()
        lines[line - 1] = lines[line - 1].replace(old, new, 1)
        p.write_text("\n".join(lines) + "\n")
    p = x / "ir_ben_r.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join([*lines, lines[3]]) + "\n")  # C again, line 6
    p = x / "contacts.csv"
    lines = p.read_text().splitlines()
    nir = lines[4].split(",")[2]
    lines[4] = lines[4].replace(nir, nir[:-2] + f"{(int(nir[-2:]) + 1) % 97:02d}")
    p.write_text("\n".join(lines) + "\n")
    return x, nir


def report(path: Path) -> list[tuple[str, str, str, str, str]]:
    rows = list(csv.DictReader(path.open()))
    return [
        (Path(r["file"]).name, r["line"], r["column"], r["severity"], r["person_key"]) for r in rows
    ]


def test_every_bad_row_is_quarantined_and_nothing_written(tmp_path: Path) -> None:
    x, nir = damaged(tmp_path)
    out = tmp_path / "out" / "targets.csv"
    out.parent.mkdir()
    code, output = run(x, out)
    assert code == 2
    assert not out.exists() and not list(out.parent.glob(".*"))
    q = out.parent / "targets.quarantine.csv"
    assert sorted(report(q)) == sorted(
        [
            ("ir_ben_r.csv", "2", "ben_res_dpt", "error", "A:1"),
            ("ir_ben_r.csv", "6", "ben_nir_psa", "error", "C:1"),
            ("ir_imb_r.csv", "3", "imb_ald_dtf", "error", "B:1"),
            ("ir_mtt_r.csv", "5", "mtt_dep_dte", "error", "D:1"),
            ("contacts.csv", "5", "nir", "error", "D:1"),
            ("contacts.csv", "3", "adresse_l4", "warning", "B:1"),
        ]
    )
    text = q.read_text()
    assert "la ligne d'adresse 4 a 40 caractères, au plus 38" in text
    assert nir not in text and nir[:-2] not in text and nir[:-2] not in output
    assert "ir_ben_r.csv, ligne 2, colonne ben_res_dpt : valeur vide" in output
    assert str(q) in output.replace("\n", "") and "Rien n'a été écrit." in output


def test_quarantine_path_option_and_warnings_only(tmp_path: Path) -> None:
    x = Extract().person("A", contact={"adresse_l1": "M" * 39}).write(tmp_path / "x")
    out, q = tmp_path / "targets.csv", tmp_path / "q" / "bad.csv"
    q.parent.mkdir()
    code, output = run(x, out, "--quarantine", str(q))
    assert code == 0, output
    assert out.exists() and report(q) == [("contacts.csv", "2", "adresse_l1", "warning", "A:1")]
    assert "1 avertissements" in output


def test_clean_extract_gives_an_empty_report(tmp_path: Path) -> None:
    x = Extract().person("A").write(tmp_path / "x")
    out = tmp_path / "targets.csv"
    code, output = run(x, out)
    assert code == 0, output
    assert (tmp_path / "targets.quarantine.csv").read_text() == (
        "file,line,column,severity,reason,person_key\n"
    )
