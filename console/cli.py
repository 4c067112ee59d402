"""The `relance` command line.

Every command lives in its own `console.cmd_*` module, imported only when that command runs or
shows its own help: `relance --help` and each `relance X --help` start in well under half a
second, without Prefect, FastAPI, the channels, DuckDB or pandas (bench/cli/startup.py). The
command modules keep their heavy imports inside the command bodies.

To add a command: one row in COMMANDS (name, module, one-line help); the module has a
`register(app)` that adds a command or a group under that name.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer import _click
from typer.core import TyperCommand, TyperGroup

from console import french

french.install()

# (name, module, the line `relance --help` shows): the help of the listing, without the import.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("synth", "console.cmd_synth", "Écrire un extrait synthétique au format SNDS."),
    ("target", "console.cmd_target", "Cibler une campagne sur un extrait, à une date."),
    ("explain", "console.cmd_explain", "Pourquoi une personne est ciblée ou non."),
    ("validation", "console.cmd_validation", "Validation de la liste d'une campagne."),
    ("console", "console.cmd_console", "Démarrer la console web."),
    ("users", "console.cmd_users", "Les comptes de la console."),
    ("why", "console.cmd_ledger", "Le parcours d'une personne dans une campagne."),
    ("audit", "console.cmd_ledger", "Le journal d'audit."),
    ("letters", "console.cmd_letters", "Courriers : les retours de l'imprimeur (NPAI)."),
    ("demo", "console.cmd_demo", "Jouer une campagne jour par jour sur données synthétiques."),
    ("retention", "console.cmd_retention", "Durée de conservation : compter ou anonymiser."),
    ("keys", "console.cmd_keys", "Les clés de chiffrement des données au repos."),
    ("oppositions", "console.cmd_oppositions", "Les oppositions à être contacté."),
    ("enrolments", "console.cmd_enrolments", "Importer le flux d'adhésions d'une campagne."),
    ("campaigns", "console.cmd_campaigns", "Les campagnes : état, planification, pause, fin."),
)


class _Commands(MutableMapping[str, _click.Command]):
    """The group's commands, each imported from its module the first time it is asked for."""

    def __init__(self, table: tuple[tuple[str, str, str], ...]) -> None:
        self.modules = {name: module for name, module, _ in table}
        self.loaded: dict[str, _click.Command] = {}

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self.loaded:
            if name not in self.modules:
                raise KeyError(name)
            holder = typer.Typer()
            importlib.import_module(self.modules[name]).register(holder)
            self.loaded[name] = typer.main.get_group(holder).commands[name]
        return self.loaded[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self.loaded.pop(name, None)
        self.modules.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self.modules
        yield from (n for n in self.loaded if n not in self.modules)

    def __len__(self) -> int:
        return len(self.modules.keys() | self.loaded.keys())


def _database_error(e: Exception) -> str | None:
    """What a database error means to the user, or None if it is none."""
    if "sqlalchemy" not in sys.modules:
        return None  # nothing ran against a database
    # Already loaded by the command that failed: no cost to `relance --help`.
    from sqlalchemy.exc import ArgumentError, OperationalError

    if isinstance(e, ArgumentError):
        return "adresse invalide"
    if isinstance(e, OperationalError):
        return "base injoignable"
    return None


class _LazyGroup(TyperGroup):
    """Commands loaded on demand; a bad setting or path met deep in a command ends in a French
    message and exit 2."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(COMMANDS)
        self.short_help_of = {name: text for name, _, text in COMMANDS}

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except (_click.ClickException, typer.Exit):
            french.rich_help()  # the error or the help about to be printed, in French
            raise

    def format_help(self, ctx: Any, formatter: Any) -> None:
        french.rich_help()
        # The listing shows each command's line from COMMANDS: no command module is imported.
        real = self.commands
        self.commands = {
            name: TyperCommand(name, short_help=self.short_help_of.get(name, "")) for name in real
        }
        try:
            super().format_help(ctx, formatter)
        finally:
            self.commands = real

    def invoke(self, ctx: Any) -> Any:
        if {"--help", "-h"} & {*getattr(ctx, "_protected_args", ()), *ctx.args}:
            french.rich_help()  # a command's own help, printed by Typer's rich printer
        try:
            return super().invoke(ctx)
        except (_click.ClickException, typer.Abort):
            french.rich_help()
            raise
        except OSError as e:
            if e.filename is None:
                raise
            _fail(f"{e.filename} : {e.strerror} ; vérifiez ce chemin (RELANCE_DATA_DIR, options)")
        except Exception as e:
            what = _database_error(e)
            if what is None:
                raise
            # Never the URL itself: it may carry a password.
            _fail(
                f"base de données : {what} ; vérifiez RELANCE_DATABASE_URL "
                "(ou RELANCE_DATA_DIR pour la base SQLite par défaut)"
            )


def _fail(message: str) -> None:
    # rich's console costs ~90 ms to import: only on this error path, not at every start
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(
        f"[red]erreur :[/red] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(2)


app = typer.Typer(
    cls=_LazyGroup,
    help="Relance : orchestration des campagnes d'accompagnement de l'Assurance Maladie.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _private_files(ctx: typer.Context) -> None:
    """Whatever a command creates (ledger, outputs, extracts, outbox) is its owner's only."""
    old = os.umask(0o077)
    ctx.call_on_close(lambda: os.umask(old))
