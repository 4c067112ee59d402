"""`relance console` (the web console) and `relance users` (its accounts)."""

from __future__ import annotations

import getpass
import sys

import typer
from rich.console import Console
from rich.markup import escape

from campaigns.app.accounts import change_password
from campaigns.ledger.accounts import AccountError, create_user
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import ROLES

users = typer.Typer(help="Console accounts.", no_args_is_help=True)
err = Console(stderr=True)


def console(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Start the web console (advisers, supervisors, échelon leads, campaign managers)."""
    import uvicorn

    # The web app (FastAPI, templates, matplotlib) loads only for this command, not every CLI call.
    from console.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@users.command("add")
def add(
    username: str = typer.Argument(...),
    role: str = typer.Option(..., "--role", help=", ".join(ROLES)),
    echelon: str = typer.Option(None, "--echelon", help="For échelon leads: their échelon."),
    name: str = typer.Option(None, "--name", help="Display name."),
    phone_line: str = typer.Option(None, "--phone-line", help="Advisers: their line, E.164."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read it from stdin."),
) -> None:
    """Create an account (the password is asked for, never taken on the command line)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass()
    try:
        with session_scope(get_engine()) as s:
            u = create_user(
                session=s,
                username=username,
                password=password,
                role=role,
                echelon=echelon,
                display_name=name,
                phone_line=phone_line,
            )
            scope = f", échelon {u.echelon}" if u.echelon else ""
            err.print(f"user {u.username} ({u.role}{scope}) created")
    except AccountError as e:
        err.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


@users.command("password")
def password_cmd(
    username: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read it from stdin."),
) -> None:
    """Changer le mot de passe d'un compte : ses sessions ouvertes sont fermées."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass()
    try:
        with session_scope(get_engine()) as s:
            ended = change_password(
                session=s, actor=getpass.getuser(), username=username, password=password
            )
        err.print(f"mot de passe de {username} changé ; sessions fermées : {ended}")
    except AccountError as e:
        err.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.command(name="console")(console)
    app.add_typer(users, name="users")
