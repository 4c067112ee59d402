"""`relance console`: the web console."""

from __future__ import annotations

import typer


def console(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Démarrer la console web (conseillers, superviseurs, échelons, responsables de campagne)."""
    import uvicorn

    # heavy optional dependency: the web app (FastAPI, templates, matplotlib) loads only here.
    from console.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="console")(console)
