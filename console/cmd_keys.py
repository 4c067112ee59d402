"""`relance keys new` and `relance keys rotate`: the keys encrypting contact data at rest."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

keys = typer.Typer(
    help="Clés de chiffrement du NIR, du téléphone et de l'e-mail au repos (docs/security.md).",
    no_args_is_help=True,
)
out, err = Console(), Console(stderr=True)


@keys.command("new")
def keys_new() -> None:
    """Affiche une clé neuve, à placer en tête de RELANCE_DATA_KEYS (la plus récente d'abord)."""
    # heavy optional dependency: cryptography loads only when a key is made.
    from campaigns.ledger.crypto import new_key

    print(new_key())


@keys.command("rotate")
def keys_rotate(
    batch: int = typer.Option(1000, "--batch", min=1, help="lignes par transaction"),
) -> None:
    """Rechiffre chaque valeur avec la clé la plus récente ; les anciennes peuvent être retirées."""
    # heavy optional dependency: the ledger (SQLAlchemy) loads only when a command runs.
    from campaigns.ledger.crypto import (
        DecryptionError,
        KeyConfigError,
        configured_keys,
        rotate_all,
    )

    # heavy optional dependency: as above.
    from campaigns.ledger.db import get_engine

    try:
        n_keys = len(configured_keys())
        engine = get_engine()
        counts = rotate_all(
            engine,
            batch=batch,
            progress=lambda c: out.print(
                f"  {_n(c['person.rows'])} personnes, {_n(c['values'])} valeurs rechiffrées"
            ),
        )
    except (DecryptionError, KeyConfigError) as e:
        err.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(
        f"{_n(counts['values'])} valeurs de {_n(counts['person.rows'])} personnes rechiffrées "
        f"avec la plus récente des {n_keys} clé(s) ; les plus anciennes peuvent être retirées"
    )


def _n(value: int) -> str:
    """A count in French format (narrow no-break space between thousands)."""
    return f"{value:,}".replace(",", "\u202f")


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.add_typer(keys, name="keys")
