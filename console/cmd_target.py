"""`relance target`: run a campaign's targeting rule over an extract."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
