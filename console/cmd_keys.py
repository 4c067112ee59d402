"""`relance keys new` and `relance keys rotate`: the keys encrypting contact data at rest."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

keys = typer.Typer(
    help="Keys encrypting NIR, phone and e-mail at rest (docs/security.md).",
    no_args_is_help=True,
)
out, err = Console(), Console(stderr=True)


@keys.command("new")
def keys_new() -> None:
    """Print a fresh key, to prepend to RELANCE_DATA_KEYS (newest first)."""
    # heavy optional dependency: cryptography loads only when a key is made.
    from campaigns.ledger.crypto import new_key

    print(new_key())


@keys.command("rotate")
def keys_rotate(
    batch: int = typer.Option(1000, "--batch", min=1, help="rows per transaction"),
) -> None:
    """Re-encrypt every stored value with the newest key; then the old keys can be dropped."""
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
                f"  {c['person.rows']:,} people, {c['values']:,} values re-encrypted"
            ),
        )
    except (DecryptionError, KeyConfigError) as e:
        err.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(
        f"re-encrypted {counts['values']:,} values of {counts['person.rows']:,} people "
        f"with the newest of {n_keys} key(s); older keys can now be removed"
    )


def register(app: typer.Typer) -> None:
    """Add the commands to the CLI."""
    app.add_typer(keys, name="keys")
