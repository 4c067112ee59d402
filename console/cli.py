"""The `relance` command line."""

from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import ArgumentError, OperationalError
from typer.core import TyperGroup

from console import (
    cmd_campaigns,
    cmd_console,
    cmd_enrolments,
    cmd_explain,
    cmd_keys,
    cmd_ledger,
    cmd_letters,
    cmd_oppositions,
    cmd_retention,
    cmd_synth,
    cmd_target,
    cmd_validation,
)
from console.demo import command as cmd_demo


class _ClearErrors(TyperGroup):
    """A bad setting or path met deep in a command ends in a French message and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (ArgumentError, OperationalError) as e:
            # Never the URL itself: it may carry a password.
            what = "adresse invalide" if isinstance(e, ArgumentError) else "base injoignable"
            _fail(
                f"base de données : {what} ; vérifiez RELANCE_DATABASE_URL "
                "(ou RELANCE_DATA_DIR pour la base SQLite par défaut)"
            )
        except OSError as e:
            if e.filename is None:
                raise
            _fail(f"{e.filename} : {e.strerror} ; vérifiez ce chemin (RELANCE_DATA_DIR, options)")


def _fail(message: str) -> None:
    Console(stderr=True).print(
        f"[red]erreur :[/red] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(2)


app = typer.Typer(
    cls=_ClearErrors,
    help="Relance: outbound campaign orchestration for Assurance Maladie.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _private_files(ctx: typer.Context) -> None:
    """Whatever a command creates (ledger, outputs, extracts, outbox) is its owner's only."""
    old = os.umask(0o077)
    ctx.call_on_close(lambda: os.umask(old))


cmd_synth.register(app)
cmd_target.register(app)
cmd_explain.register(app)
cmd_validation.register(app)
cmd_console.register(app)
cmd_ledger.register(app)
cmd_letters.register(app)
cmd_demo.register(app)
cmd_retention.register(app)
cmd_keys.register(app)
cmd_oppositions.register(app)
cmd_enrolments.register(app)
cmd_campaigns.register(app)
