"""audit log: a gapless sequence, a scheme per event (keyed from now on), the one-row head

Events already written keep verifying as scheme 1 (unkeyed SHA-256); every event written
after this migration is scheme 2 (HMAC-SHA256 under a key kept outside the database).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
NO_UPDATE = (
    "CREATE TRIGGER auditevent_no_update BEFORE UPDATE ON auditevent "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
)


def _guard(*, on: bool) -> None:
    """The append-only trigger of 0007, lifted while existing events get their number."""
    if op.get_bind().dialect.name == "postgresql":
        verb = "ENABLE" if on else "DISABLE"
        op.execute(f"ALTER TABLE auditevent {verb} TRIGGER auditevent_append_only")
    else:
        op.execute(NO_UPDATE if on else "DROP TRIGGER auditevent_no_update")


def upgrade() -> None:
    op.add_column("auditevent", sa.Column("seq", sa.Integer(), nullable=True))
    op.add_column(
        "auditevent", sa.Column("scheme", sa.Integer(), nullable=False, server_default="1")
    )
    _guard(on=False)
    op.execute(
        "UPDATE auditevent SET seq = numbered.n FROM "
        "(SELECT id, row_number() OVER (ORDER BY id) AS n FROM auditevent) AS numbered "
        "WHERE auditevent.id = numbered.id"
    )
    _guard(on=True)
    op.create_index("ix_auditevent_seq", "auditevent", ["seq"], unique=True)
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO audit_head (id, seq, hash) SELECT 1, "
        "COALESCE((SELECT MAX(seq) FROM auditevent), 0), "
        f"COALESCE((SELECT hash FROM auditevent ORDER BY id DESC LIMIT 1), '{GENESIS}')"
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_auditevent_seq", table_name="auditevent")
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy of the table would lose 0007's triggers.
    op.drop_column("auditevent", "scheme")
    op.drop_column("auditevent", "seq")
