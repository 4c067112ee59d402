"""Nothing destroyed by a path (issue 13, failure 4); personal data created 0600 in 0700 folders."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from campaigns.ledger.db import make_engine, upgrade
from campaigns.settings import Settings
from channels.base import write_atomic
from console.cli import app
from targeting.synth import write_extract
from tests.extracts import Extract

AS_OF = date(2026, 3, 2)
MARKER = ".relance-demo"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(autouse=True)
def usual_umask() -> object:
    """The umask most machines have: what is private must be made so by the code."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def target(x: Path, output: Path, *more: str, campaign: str = "sophia-ald8") -> tuple[int, str]:
    r = CliRunner().invoke(
        app,
        [
            "target",
            campaign,
            "--extract",
            str(x),
            "--as-of",
            AS_OF.isoformat(),
            "--output",
            str(output),
            *more,
        ],
    )
    assert "Traceback" not in r.output and not isinstance(r.exception, AssertionError)
    return r.exit_code, " ".join(r.output.split())


def test_an_output_on_an_extract_table_is_refused_and_the_table_kept(tmp_path: Path) -> None:
    x = Extract().person("A").person("B").write(tmp_path / "x", "parquet")
    before = digest(x)
    code, out = target(x, x / "ir_ben_r.parquet")
    assert code == 2
    assert "ir_ben_r.parquet" in out and "dossier d'entrée" in out and "Rien n'a été écrit" in out
    assert digest(x) == before


def test_an_output_anywhere_inside_the_extract_is_refused(tmp_path: Path) -> None:
    x = Extract().person("A").write(tmp_path / "x")
    (x / "sub").mkdir()
    before = digest(x)
    code, out = target(x, x / "sub" / "targets.csv")
    assert code == 2 and "dossier d'entrée" in out
    code, out = target(x, tmp_path / "t.csv", "--quarantine", str(x / "contacts.csv"))
    assert code == 2 and "--quarantine" in out
    assert digest(x) == before and not (tmp_path / "t.csv").exists()


def test_an_output_inside_the_campaign_folder_is_refused(tmp_path: Path) -> None:
    import shutil

    from campaigns.definition.model import DEFINITIONS_DIR

    folder = tmp_path / "c"
    shutil.copytree(DEFINITIONS_DIR / "sophia_ald8", folder)
    before = digest(folder)
    x = Extract().person("A").write(tmp_path / "x")
    code, out = target(x, folder / "campaign.yaml", campaign=str(folder))
    assert code == 2 and "campaign.yaml" in out
    assert digest(folder) == before


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (lambda t: t, "est un dossier"),
        (lambda t: t / "missing" / "t.csv", "n'existe pas"),
        (lambda t: t / "x" / "ir_ben_r.csv" / "t.csv", "n'est pas un dossier"),
        (lambda t: Path("/proc/t.csv"), "dossier /proc"),
    ],
    ids=["a-folder", "missing-folder", "under-a-file", "unwritable"],
)
def test_an_output_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, where: object, expected: str
) -> None:
    x = Extract().person("A").write(tmp_path / "x")
    output = where(tmp_path)  # type: ignore[operator]
    code, out = target(x, output)
    assert code == 2 and str(output.parent) in out and expected in out, out
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_synth_refuses_a_file_or_a_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep\n")
    for out, expected in [(tmp_path / "f", "n'est pas un dossier"), (tmp_path / "a" / "b", "")]:
        r = CliRunner().invoke(
            app, ["synth", "--out", str(out), "--people", "3", "--as-of", "2026-03-02"]
        )
        assert r.exit_code == 2 and "Traceback" not in r.output and expected in r.output
    assert (tmp_path / "f").read_text() == "keep\n" and not (tmp_path / "a").exists()


def test_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("four years\n")
    r = CliRunner().invoke(app, ["demo", "--people", "10", "--days", "1", "--data-dir", str(mine)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert MARKER in r.output and "rien n'a été supprimé" in " ".join(r.output.split())
    assert (mine / "thesis.tex").read_text() == "four years\n"


def test_demo_empties_only_a_previous_demo_folder(tmp_path: Path) -> None:
    from console.demo.command import prepare_data_dir

    d = tmp_path / "d"
    prepare_data_dir(d)
    assert (d / MARKER).is_file() and mode(d) == 0o700
    (d / "relance.db").write_text("old ledger")
    prepare_data_dir(d)
    assert sorted(p.name for p in d.iterdir()) == [MARKER]


def test_demo_keeps_its_key_with_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--people", "40", "--days", "1", "--data-dir", str(d)])
    assert r.exit_code == 0, r.output
    assert (d / "data_keys").is_file() and mode(d / "data_keys") == 0o600
    assert not (tmp_path / "var").exists()
    for name in ("relance.db", "extract/contacts.parquet"):
        assert mode(d / name) == 0o600, name


def test_the_sqlite_ledger_is_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=None)
    url = settings.resolved_database_url()
    assert url.startswith("sqlite")
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE IF NOT EXISTS probe (x int)"))
        c.execute(text("INSERT INTO probe VALUES (1)"))
        # -wal and -shm exist while a connection is open.
        modes = {p.name: mode(p) for p in (tmp_path / "var").iterdir()}
    engine.dispose()
    assert mode(tmp_path / "var") == 0o700
    assert {"relance.db", "relance.db-wal", "relance.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_target_outputs_and_reports_are_private(tmp_path: Path) -> None:
    x = Extract().person("A").write(tmp_path / "x")
    code, out = target(x, tmp_path / "t.csv")
    assert code == 0, out
    assert mode(tmp_path / "t.csv") == 0o600
    assert mode(tmp_path / "t.quarantine.csv") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.quarantine.csv", "x"]


def test_synth_extracts_are_private(tmp_path: Path) -> None:
    write_extract(out=tmp_path / "x", people=20, seed=1, as_of=AS_OF, fmt="csv")
    assert mode(tmp_path / "x") == 0o700
    assert {mode(p) for p in (tmp_path / "x").iterdir()} == {0o600}


def test_outbox_documents_are_private(tmp_path: Path) -> None:
    doc = tmp_path / "outbox" / "mailbox" / "k.md"
    write_atomic(doc, b"Bonjour")
    assert mode(doc) == 0o600 and mode(doc.parent) == 0o700 and mode(doc.parent.parent) == 0o700
