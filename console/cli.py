"""The `relance` command line."""

from __future__ import annotations

import typer

from console import (
    cmd_console,
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

app = typer.Typer(
    help="Relance: outbound campaign orchestration for Assurance Maladie.",
    no_args_is_help=True,
    add_completion=False,
)

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
