"""`relance users add|list|disable|reset-password|set-role`: the console's accounts.

Every step is a use case of `campaigns.app.accounts`, audited under the system user running
the command. A password is asked for (or read from stdin), never taken on the command line.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from campaigns.clock import utcnow
from campaigns.ledger.roles import ROLES

if TYPE_CHECKING:
    from sqlmodel import Session

users = typer.Typer(help="Les comptes de la console.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def _actor() -> str:
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


def _password(from_stdin: bool) -> str:
    return sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("Mot de passe : ")


@contextmanager
def _step() -> Iterator[Session]:
    """A session whose refused step ends the command with its reason (exit code 2)."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.ledger.accounts import AccountError

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine, session_scope

    try:
        with session_scope(get_engine()) as s:
            yield s
    except AccountError as e:
        err.print(f"[red]erreur :[/red] {escape(str(e))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


@users.command("add")
def add(
    username: str = typer.Argument(..., help="Nom du compte."),
    role: str = typer.Option(..., "--role", help=", ".join(ROLES)),
    echelon: str = typer.Option(None, "--echelon", help="Responsables d'échelon : leur échelon."),
    name: str = typer.Option(None, "--name", help="Nom affiché."),
    phone_line: str = typer.Option(None, "--phone-line", help="Conseillers : leur ligne, E.164."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Le lire sur stdin."),
) -> None:
    """Créer un compte (le mot de passe est demandé, jamais pris sur la ligne de commande)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import accounts as uc

    password = _password(password_stdin)
    with _step() as s:
        u = uc.add_user(
            session=s,
            actor=_actor(),
            username=username,
            password=password,
            role=role,
            echelon=echelon,
            display_name=name,
            phone_line=phone_line,
        )
        scope = f", échelon {u.echelon}" if u.echelon else ""
        err.print(f"compte {u.username} ({u.role}{scope}) créé", markup=False, highlight=False)


@users.command("list")
def list_accounts() -> None:
    """Les comptes : rôle, échelon, ouvert ou fermé, verrouillé (ni mot de passe ni empreinte)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import accounts as uc

    with _step() as s:
        rows = uc.list_users(session=s, actor=_actor())
        now = utcnow().replace(tzinfo=None)
        t = Table("compte", "nom", "rôle", "échelon", "état")
        for u in rows:
            locked = u.locked_until is not None and u.locked_until.replace(tzinfo=None) > now
            state = "fermé" if not u.active else ("verrouillé" if locked else "ouvert")
            t.add_row(escape(u.username), escape(u.display_name), u.role, u.echelon or "—", state)
    out.print(t)
    out.print(f"{len(rows)} compte(s)")


@users.command("disable")
def disable(username: str = typer.Argument(..., help="Le compte à fermer.")) -> None:
    """Fermer un compte : plus de connexion, ses pages se ferment (l'historique reste)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import accounts as uc

    with _step() as s:
        done = uc.disable_user(session=s, actor=_actor(), username=username)
    msg = f"compte {username} fermé" if done else f"compte {username} déjà fermé"
    out.print(msg, markup=False, highlight=False)


@users.command("reset-password")
def reset(
    username: str = typer.Argument(..., help="Le compte."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Le lire sur stdin."),
) -> None:
    """Donner un nouveau mot de passe (demandé) ; le verrouillage après échecs est levé."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import accounts as uc

    password = _password(password_stdin)
    with _step() as s:
        uc.reset_password(session=s, actor=_actor(), username=username, password=password)
    out.print(f"mot de passe du compte {username} changé", markup=False, highlight=False)


@users.command("set-role")
def set_role(
    username: str = typer.Argument(..., help="Le compte."),
    role: str = typer.Option(..., "--role", help=", ".join(ROLES)),
    echelon: str = typer.Option(None, "--echelon", help="Responsables d'échelon : leur échelon."),
) -> None:
    """Changer le rôle d'un compte (et l'échelon d'un responsable d'échelon)."""
    # heavy optional dependency: the use cases load the ledger.
    from campaigns.app import accounts as uc

    with _step() as s:
        u = uc.set_role(session=s, actor=_actor(), username=username, role=role, echelon=echelon)
        scope = f", échelon {u.echelon}" if u.echelon else ""
        out.print(f"compte {username} : {u.role}{scope}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the command group to the CLI."""
    app.add_typer(users, name="users")
