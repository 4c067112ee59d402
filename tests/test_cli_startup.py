"""The command line is quick (issue 16): `relance --help` and each `relance X --help` load no
heavy dependency, and the listing names every command with its help (bench/cli/startup.py
measures the times)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from console.cli import COMMANDS, app

HEAVY = ("prefect", "fastapi", "sqlalchemy", "twilio", "sendgrid", "duckdb", "pandas")


def loaded_after(code: str) -> dict[str, list[str]]:
    """Which heavy packages and command modules a fresh interpreter holds after `code`."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "commands = sorted(m for m in sys.modules if m.startswith('console.cmd_'))\n"
        "print(json.dumps({'heavy': heavy, 'commands': commands}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_the_cli_loads_no_heavy_dependency() -> None:
    seen = loaded_after("import console.cli")
    assert seen == {"heavy": [], "commands": []}


def test_the_listing_imports_no_command() -> None:
    seen = loaded_after(
        "from console.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert seen == {"heavy": [], "commands": []}


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_a_command_help_loads_only_its_module(name: str) -> None:
    seen = loaded_after(
        "from console.cli import app\n"
        f"try:\n    app([{name!r}, '--help'])\nexcept SystemExit:\n    pass"
    )
    assert seen["heavy"] == []
    module = dict((n, m) for n, m, _ in COMMANDS)[name]
    assert set(seen["commands"]) <= {module}


def test_every_help_page_in_one_interpreter_loads_no_heavy_dependency() -> None:
    """`relance X --help` and `relance X Y --help` for every command and subcommand, one after
    the other in one interpreter: none of them pulls a heavy dependency in."""
    seen = loaded_after(
        "import typer.main\n"
        "from typer.testing import CliRunner\n"
        "from console.cli import COMMANDS, app\n"
        "runner, failed = CliRunner(), []\n"
        "for name, _, _ in COMMANDS:\n"
        "    r = runner.invoke(app, [name, '--help'])\n"
        "    failed += [] if r.exit_code == 0 else [name]\n"
        "    cmd = typer.main.get_command(app).commands[name]\n"
        "    for sub in getattr(cmd, 'commands', {}):\n"
        "        r = runner.invoke(app, [name, sub, '--help'])\n"
        "        failed += [] if r.exit_code == 0 else [f'{name} {sub}']\n"
        "assert not failed, failed"
    )
    assert seen["heavy"] == []
    assert seen["commands"] == sorted({module for _, module, _ in COMMANDS})


def test_the_probe_can_see_a_heavy_import() -> None:
    assert loaded_after("import duckdb")["heavy"] == ["duckdb"]


def test_help_lists_every_command_with_its_help() -> None:
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())
    for name, _, help_text in COMMANDS:
        assert help_text, name
        assert f"{name} {help_text}" in text, (name, r.output)


def test_every_registered_command_is_in_the_table_and_has_help() -> None:
    """Each row's module registers that command, with its own help; nothing else is registered."""
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert list(commands) == [name for name, _, _ in COMMANDS]
    for name, cmd in commands.items():
        assert cmd.name == name
        assert (cmd.help or "").strip(), name
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            assert (sub.help or "").strip(), f"{name} {sub_name}"
