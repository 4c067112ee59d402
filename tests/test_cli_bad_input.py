"""Every bad input a clear error (issue 13, failure 6): each CLI command, fed broken files, paths
and arguments, exits 2 with a message naming what to fix, and never with a traceback."""

from __future__ import annotations

import itertools
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from campaigns.definition.model import DEFINITIONS_DIR
from campaigns.ledger.models import ROLES
from campaigns.settings import get_settings
from console.cli import app
from targeting.synth import write_extract
from tests.extracts import Extract

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
AS_OF = "2026-03-02"
TABLES = ("ir_ben_r", "ir_imb_r", "ir_mtt_r", "contacts")
# What a command line can carry: any text but NUL (argv cannot hold it) and lone surrogates.
_N = itertools.count()
ARG = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@dataclass(frozen=True)
class World:
    root: Path
    csv: Path  # a valid CSV extract
    parquet: Path  # a valid Parquet extract (synthetic, zstd pages)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bad-input")
    mp = pytest.MonkeyPatch()
    mp.setenv("RELANCE_DATA_DIR", str(root / "var"))
    mp.setenv("RELANCE_DATABASE_URL", f"sqlite:///{root / 'var' / 'relance.db'}")
    get_settings.cache_clear()
    csv_x = Extract().person("A").person("B").write(root / "x")
    parquet_x = root / "px"
    write_extract(out=parquet_x, people=300, seed=1, as_of=date(2026, 3, 2))
    yield World(root, csv_x, parquet_x)
    mp.undo()
    get_settings.cache_clear()


def run(*args: str, stdin: str | None = None) -> tuple[Result, str]:
    r = CliRunner().invoke(app, list(args), input=stdin)
    # Rich wraps long lines: compare on the words, whatever the width.
    return r, " ".join(r.output.split())


def clear_error(r: Result, text: str, *names: str) -> None:
    """Exit 2, no traceback, every name (what to fix) in the message."""
    assert "Traceback" not in r.output
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    for name in names:
        assert " ".join(name.split()) in text, (name, r.output)


def fresh(world: World, name: str) -> Path:
    """An empty scratch folder for one example."""
    d = world.root / "scratch" / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def first_person(extract: Path) -> str:
    import pyarrow.parquet as pq

    t = pq.read_table(extract / "ir_imb_r.parquet", columns=["ben_nir_psa", "ben_rng_gem"])
    return f"{t['ben_nir_psa'][0].as_py()}:{t['ben_rng_gem'][0].as_py()}"


def damaged_copy(src: Path, dst: Path, table: str, data: bytes) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    victim = next(dst.glob(f"{table}.*"))
    victim.write_bytes(data)
    return victim


# --- Failure 6: a Parquet file damaged in the middle is named, exit 2 -------------------------


@pytest.mark.parametrize("command", ["target", "explain"])
@pytest.mark.parametrize("where", [0.2, 0.4])
def test_a_parquet_file_damaged_in_the_middle_is_named(
    world: World, command: str, where: float
) -> None:
    data = bytearray((world.parquet / "ir_imb_r.parquet").read_bytes())
    rng = random.Random(1)
    start = int(len(data) * where)
    for i in range(start, start + 64):
        data[i] = rng.randrange(256)
    x = world.root / f"damaged-{command}-{where}"
    victim = damaged_copy(world.parquet, x, "ir_imb_r", bytes(data))
    out = fresh(world, f"damaged-out-{command}-{where}") / "t.csv"
    if command == "target":
        r, text = run("target", "sophia-ald8", "--extract", str(x), "--as-of", AS_OF,
                      "--output", str(out))  # fmt: skip
    else:
        r, text = run("explain", "sophia-ald8", "--extract", str(x), "--as-of", AS_OF,
                      "--person", first_person(world.parquet))  # fmt: skip
    clear_error(r, text, str(victim))
    assert "endommagé" in text or "illisible" in text
    assert not out.exists()


# --- Broken files ----------------------------------------------------------------------------


@SETTINGS
@given(
    table=st.sampled_from(TABLES),
    fmt=st.sampled_from(["csv", "parquet"]),
    cut=st.floats(0.05, 0.95),
    noise=st.binary(min_size=1, max_size=200),
    command=st.sampled_from(["target", "explain"]),
)
def test_a_broken_extract_table_is_named(
    world: World, table: str, fmt: str, cut: float, noise: bytes, command: str
) -> None:
    src = world.csv if fmt == "csv" else world.parquet
    data = next(src.glob(f"{table}.*")).read_bytes()
    at = int(len(data) * cut)
    # Truncated and overwritten: what a copy cut short or a bad disk leaves.
    broken = data[:at] + noise
    x = world.root / f"broken-{next(_N)}"  # a new path: no cached check of an older copy
    victim = damaged_copy(src, x, table, broken)
    out = fresh(world, "broken-out") / "t.csv"
    if command == "target":
        r, text = run("target", "sophia-ald8", "--extract", str(x), "--as-of", AS_OF,
                      "--output", str(out))  # fmt: skip
    else:
        r, text = run("explain", "sophia-ald8", "--extract", str(x), "--as-of", AS_OF,
                      "--person", "A:1")  # fmt: skip
    # A cut that leaves a valid CSV prefix (whole lines) may still be a valid extract.
    if r.exit_code != 2:
        assert "Traceback" not in r.output and r.exit_code in (0, 1), r.output
        return
    clear_error(r, text, victim.name)
    assert not out.exists()
    shutil.rmtree(x)


@SETTINGS
@given(
    content=st.binary(max_size=300),
    command=st.sampled_from(["oppositions", "letters", "enrolments"]),
)
def test_a_broken_import_file_is_refused(world: World, content: bytes, command: str) -> None:
    f = fresh(world, "imports") / "in.csv"
    f.write_bytes(b"\xff\xfe" + content if content[:1].isascii() else content)
    args = {
        "oppositions": ["oppositions", "import"],
        "letters": ["letters", "returns"],
        "enrolments": ["enrolments", "--campaign", "sophia-ald8"],
    }[command]
    r, text = run(*args, str(f))
    clear_error(r, text, "in.csv")


@SETTINGS
@given(text=st.text(max_size=200), where=st.sampled_from(["campaign.yaml", "templates"]))
def test_a_broken_campaign_folder_is_named(world: World, text: str, where: str) -> None:
    folder = fresh(world, "campaign") / "c"
    shutil.copytree(DEFINITIONS_DIR / "sophia_ald8", folder)
    if where == "campaign.yaml":
        (folder / "campaign.yaml").write_text(text, encoding="utf-8")
        named = "campaign.yaml"
    else:
        name = "call_script.md.j2"
        (folder / "templates" / name).write_text("{% if %}" + text, encoding="utf-8")
        named = name
    out = folder.parent / "t.csv"
    r, out_text = run("target", str(folder), "--extract", str(world.csv), "--as-of", AS_OF,
                      "--output", str(out))  # fmt: skip
    clear_error(r, out_text, named)
    assert not out.exists()


def test_a_campaign_yaml_that_is_not_utf8_is_named(world: World) -> None:
    folder = fresh(world, "latin1") / "c"
    shutil.copytree(DEFINITIONS_DIR / "sophia_ald8", folder)
    y = folder / "campaign.yaml"
    y.write_bytes(y.read_text(encoding="utf-8").encode("latin-1", errors="replace"))
    r, text = run("explain", f"{folder}/", "--extract", str(world.csv), "--as-of", AS_OF,
                  "--person", "A:1")  # fmt: skip
    clear_error(r, text, "campaign.yaml", "UTF-8")


# --- Broken paths ----------------------------------------------------------------------------


def _bad_output(world: World, kind: str, scratch: Path) -> tuple[Path, str]:
    """An output path of one bad kind, and what the message must name."""
    (scratch / "afile").write_text("keep\n")
    return {
        "a-folder": (scratch, str(scratch)),
        "missing-folder": (scratch / "no" / "t.csv", str(scratch / "no")),
        "under-a-file": (scratch / "afile" / "t.csv", str(scratch / "afile")),
        "extract-table": (world.csv / "ir_ben_r.csv", "ir_ben_r.csv"),
        "inside-extract": (world.csv / "t.csv", str(world.csv)),
        "read-only-fs": (Path("/proc/t.csv"), "/proc"),
    }[kind]


OUTPUT_KINDS = [
    "a-folder",
    "missing-folder",
    "under-a-file",
    "extract-table",
    "inside-extract",
    "read-only-fs",
]


@SETTINGS
@given(kind=st.sampled_from(OUTPUT_KINDS), option=st.sampled_from(["--output", "--quarantine"]))
def test_a_bad_target_output_is_refused_and_nothing_written(
    world: World, kind: str, option: str
) -> None:
    scratch = fresh(world, "outputs")
    before = {p.name: p.read_bytes() for p in world.csv.iterdir()}
    bad, named = _bad_output(world, kind, scratch)
    good = scratch / "ok.csv"
    paths = {"--output": good, "--quarantine": scratch / "q.csv"}
    paths[option] = bad
    r, text = run("target", "sophia-ald8", "--extract", str(world.csv), "--as-of", AS_OF,
                  "--output", str(paths["--output"]),
                  "--quarantine", str(paths["--quarantine"]))  # fmt: skip
    clear_error(r, text, named)
    assert {p.name: p.read_bytes() for p in world.csv.iterdir()} == before
    assert sorted(p.name for p in scratch.iterdir()) == ["afile"]


@SETTINGS
@given(kind=st.sampled_from(["a-file", "not-empty", "missing-parent", "under-a-file"]))
def test_a_bad_synth_folder_is_refused(world: World, kind: str) -> None:
    scratch = fresh(world, "synth")
    (scratch / "afile").write_text("keep\n")
    (scratch / "full").mkdir()
    (scratch / "full" / "mine.txt").write_text("keep\n")
    out = {
        "a-file": scratch / "afile",
        "not-empty": scratch / "full",
        "missing-parent": scratch / "no" / "x",
        "under-a-file": scratch / "afile" / "x",
    }[kind]
    r, text = run("synth", "--out", str(out), "--people", "5", "--as-of", AS_OF)
    clear_error(r, text, str(out))
    assert (scratch / "afile").read_text() == "keep\n"
    assert [p.name for p in (scratch / "full").iterdir()] == ["mine.txt"]
    assert not (scratch / "no").exists()


def test_a_data_dir_that_is_a_file_or_foreign_is_refused(world: World) -> None:
    scratch = fresh(world, "demo")
    (scratch / "afile").write_text("keep\n")
    (scratch / "full").mkdir()
    (scratch / "full" / "mine.txt").write_text("keep\n")
    for d in (scratch / "afile", scratch / "full"):
        r, text = run("demo", "--people", "5", "--days", "1", "--data-dir", str(d))
        clear_error(r, text, str(d))
    assert (scratch / "afile").read_text() == "keep\n"
    assert (scratch / "full" / "mine.txt").read_text() == "keep\n"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("RELANCE_DATA_DIR", "afile", "afile"),
        ("RELANCE_DATABASE_URL", "nonsense", "RELANCE_DATABASE_URL"),
        ("RELANCE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x", "RELANCE_DATABASE_URL"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["audit", "verify"],
        ["audit", "checkpoint"],
        ["why", "--person", "A:1", "--campaign", "x"],
        ["retention"],
    ],
)
def test_a_bad_data_setting_is_named(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    named: str,
    command: list[str],
) -> None:
    from campaigns.ledger import db

    scratch = fresh(world, "settings")
    (scratch / "afile").write_text("keep\n")
    monkeypatch.chdir(scratch)
    if variable == "RELANCE_DATA_DIR":
        monkeypatch.delenv("RELANCE_DATABASE_URL")
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(db, "_engines", {})
    get_settings.cache_clear()
    try:
        r, text = run(*command)
    finally:
        get_settings.cache_clear()
    clear_error(r, text, named)
    assert "nobody" not in text  # a URL may carry a password: never printed


# --- Broken arguments ------------------------------------------------------------------------


def not_a_number(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return True
    return False


def not_an_iso_date(s: str) -> bool:
    try:
        date.fromisoformat(s)
    except ValueError:
        return True
    return False


def not_a_strptime_date(s: str) -> bool:
    from datetime import datetime

    try:
        datetime.strptime(s, "%Y-%m-%d")  # noqa: DTZ007  (only the shape is checked)
    except ValueError:
        return True
    return False


BAD_DATE = ARG.filter(not_an_iso_date)


@SETTINGS
@given(day=BAD_DATE, command=st.sampled_from(["target", "explain", "synth", "retention", "demo"]))
def test_a_bad_date_names_its_option(world: World, day: str, command: str) -> None:
    out = fresh(world, "dates")
    args = {
        "target": ["target", "sophia-ald8", "--extract", str(world.csv), "--output",
                   str(out / "t.csv"), "--as-of", day],
        "explain": ["explain", "sophia-ald8", "--extract", str(world.csv), "--person", "A:1",
                    "--as-of", day],
        "synth": ["synth", "--out", str(out / "x"), "--people", "3", "--as-of", day],
        "retention": ["retention", "--as-of", day],
        "demo": ["demo", "--data-dir", str(out / "d"), "--people", "3", "--start", day],
    }[command]  # fmt: skip
    if command == "retention" and not_a_strptime_date(day) is False:
        return  # retention's --as-of also takes 2026-3-2
    r, text = run(*args)
    option = "--start" if command == "demo" else "--as-of"
    clear_error(r, text, option)
    assert list(out.iterdir()) == []


@SETTINGS
@given(person=ARG.filter(lambda s: ":" not in s) | st.sampled_from(["A:", ":1", "A:x", "A:1:"]))
def test_a_bad_person_names_the_expected_shape(world: World, person: str) -> None:
    r, text = run("explain", "sophia-ald8", "--extract", str(world.csv), "--as-of", AS_OF,
                  "--person", person)  # fmt: skip
    clear_error(r, text, "--person")
    r, text = run("why", "--person", person, "--campaign", "sophia-ald8")
    clear_error(r, text, "--person")


@SETTINGS
@given(campaign=ARG.filter(lambda s: s != "sophia-ald8" and not s.startswith("-")))
def test_an_unknown_campaign_is_named(world: World, campaign: str) -> None:
    out = fresh(world, "campaigns")
    r, text = run("target", campaign, "--extract", str(world.csv), "--as-of", AS_OF,
                  "--output", str(out / "t.csv"))  # fmt: skip
    clear_error(r, text)
    assert "campaign" in text or "campagne" in text
    assert list(out.iterdir()) == []


VALID_WORDS = {"csv", "parquet", "duckdb", "spark", *ROLES}


# Each case: the command line, and what its message must name.
BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (["synth", "--out", "{out}/x", "--people", "{word}", "--as-of", AS_OF], "--people"),
    (["synth", "--out", "{out}/x", "--people", "3", "--as-of", AS_OF, "--format", "{word}"],
     "--format"),
    (["target", "sophia-ald8", "--extract", "{x}", "--as-of", AS_OF, "--output", "{out}/t.csv",
      "--engine", "{word}"], "--engine"),
    (["keys", "rotate", "--batch", "{word}"], "--batch"),
    (["users", "add", "u", "--role", "{word}", "--password-stdin"], "role"),
    (["users", "set-role", "u", "--role", "{word}"], "--role"),
    (["users", "disable", "{word}"], "aucun compte"),
    (["users", "reset-password", "{word}", "--password-stdin"], "aucun compte"),
    (["validation", "exclude", "{word}", "--member", "1", "--reason", "x", "--by", "me"],
     "aucune liste en attente"),
    (["validation", "list", "{word}", "--echelon", "93", "--by", "me"], "aucune liste en attente"),
    (["validation", "approve", "{word}", "--by", "me"], "aucune liste en attente"),
    (["demo", "--data-dir", "{out}/d", "--people", "{word}"], "--people"),
    (["console", "--port", "{word}"], "--port"),
    (["campaigns", "show", "{word}"], "campagne inconnue"),
    (["campaigns", "pause", "{word}", "--by", "me"], "campagne inconnue du registre"),
    (["campaigns", "resume", "{word}", "--by", "me"], "campagne inconnue du registre"),
    (["campaigns", "end", "{word}", "--by", "me", "--yes"], "campagne inconnue du registre"),
    (["campaigns", "check", "sophia-ald8", "--extract", "{x}", "--as-of", "{word}"], "--as-of"),
    (["campaigns", "check", "{word}"], "campa"),
    (["campaigns", "schedule", "{word}", "--by", "me"], "campa"),
    (["campaigns", "launch", "{word}", "--by", "me"], "campagne inconnue du registre"),
    (["campaigns", "runs", "{word}"], "campagne inconnue du registre"),
    (["campaigns", "draft", "{word}", "--by", "me", "--from", "nope"], "campa"),
]  # fmt: skip


@SETTINGS
@given(
    case=st.sampled_from(BAD_ARGUMENTS),
    word=st.sampled_from(["[/x]", "[red]", "[link=x]y"])
    | ARG.filter(
        lambda s: s.strip() != "" and s[0] != "-" and not_a_number(s) and s not in VALID_WORDS
    ),
)
def test_a_bad_argument_is_named(world: World, case: tuple[list[str], str], word: str) -> None:
    out = fresh(world, "args")
    template, named = case
    args = [a.format(out=out, x=world.csv, word=word) if "{" in a else a for a in template]
    r, text = run(*args, stdin="a-long-enough-password-2026\n")
    clear_error(r, text, named)
    assert list(out.iterdir()) == []


def test_the_suite_covers_every_command() -> None:
    """A new command gets its bad-input case here: the list must match the CLI."""
    import typer.main

    group = typer.main.get_command(app)
    names = set()
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        names |= {f"{name} {s}" for s in subs} if subs else {name}
    covered = {
        "synth", "target", "explain", "why", "demo", "retention", "console",
        "audit verify", "audit checkpoint", "keys rotate", "keys new", "users add",
        "users list", "users disable", "users reset-password", "users set-role",
        "letters returns", "enrolments",
        "oppositions import", "validation exclude", "validation list", "validation approve",
        "validation status", "validation revoke", "validation sign-off", "validation reject",
        "campaigns list", "campaigns show", "campaigns check", "campaigns pause",
        "campaigns resume", "campaigns end", "campaigns schedule", "campaigns launch",
        "campaigns runs", "campaigns draft",
    }  # fmt: skip
    assert names <= covered, names - covered


@pytest.mark.parametrize(
    "args",
    [
        ["validation", "revoke", "nope", "--member", "1", "--by", "me"],
        ["validation", "sign-off", "nope", "--echelon", "93", "--by", "me"],
        ["validation", "reject", "nope", "--by", "me", "--reason", "x"],
        ["keys", "new", "extra"],
        ["audit", "verify", "extra"],
        ["campaigns", "list", "extra"],
        ["campaigns", "check", "sophia-ald8", "--as-of", "2026-03-02"],
        ["campaigns", "end", "sophia-ald8", "--by", "me"],
        ["campaigns", "pause", "sophia-ald8"],
        ["users", "list", "extra"],
    ],
)
def test_the_other_commands_refuse_bad_arguments(world: World, args: list[str]) -> None:
    r, text = run(*args)
    clear_error(r, text)


def test_umask_is_restored_after_a_command(world: World) -> None:
    old = os.umask(0o022)
    try:
        run("keys", "new")
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)
