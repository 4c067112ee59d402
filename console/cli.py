"""The `relance` command line."""

from __future__ import annotations

import os

import typer

from console import (
    cmd_console,
    cmd_demo,
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

app = typer.Typer(
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
