"""encrypt contact data at rest: person.nir, person.telephone, person.email

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00

The columns become TEXT (a Fernet token is ~100 characters) and every existing row is
encrypted in place with the newest data key (campaigns.ledger.crypto, RELANCE_DATA_KEYS); the
downgrade decrypts them and restores the former types.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from campaigns.ledger import crypto

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("nir", "telephone", "email")
BATCH = 1000


def _rewrite(convert: Callable[[str, str], str]) -> None:
    """Apply convert(column, value) to every non-null value of the three columns, by id batch."""
    conn = op.get_bind()
    read = sa.text(
        "SELECT id, nir, telephone, email FROM person WHERE id > :last ORDER BY id LIMIT :n"
    )
    write = sa.text(
        "UPDATE person SET nir = :nir, telephone = :telephone, email = :email WHERE id = :id"
    )
    last = 0
    while True:
        rows = conn.execute(read, {"last": last, "n": BATCH}).all()
        if not rows:
            return
        conn.execute(
            write,
            [
                {
                    "id": r.id,
                    **{
                        c: None if getattr(r, c) is None else convert(c, getattr(r, c))
                        for c in COLUMNS
                    },
                }
                for r in rows
            ],
        )
        last = rows[-1].id


def _former_type(column: str) -> sa.types.TypeEngine[str]:
    return sqlmodel.sql.sqltypes.AutoString(length=15 if column == "nir" else None)


def _alter_types(*, to_text: bool) -> None:
    # SQLite keeps the declared types: VARCHAR(n) and TEXT have the same (TEXT) affinity and no
    # length is enforced there, so tokens fit as they are. Rebuilding `person` (SQLite alters
    # by copy) would drop a table that members and actions point at, which the foreign keys
    # forbid inside the migration's transaction (tests/test_encryption.py checks the upgrade
    # with a member present).
    if op.get_bind().dialect.name == "sqlite":
        return
    for c in COLUMNS:
        op.alter_column(
            "person",
            c,
            existing_type=_former_type(c) if to_text else sa.Text(),
            type_=sa.Text() if to_text else _former_type(c),
            existing_nullable=c != "nir",
        )


def upgrade() -> None:
    _alter_types(to_text=True)
    _rewrite(lambda _column, value: crypto.encrypt(value))


def downgrade() -> None:
    _rewrite(lambda column, value: crypto.decrypt(value, column=f"person.{column}"))
    _alter_types(to_text=False)
