"""board presence and stored explanations: account.last_seen_at, member_explanation

`account.last_seen_at` is the adviser page's last heartbeat: the board shows an adviser whose
page is gone as "absent" within a minute. `member_explanation` keeps the targeting
explanation of a member once computed, so the person page never reruns the targeting engine.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "member_explanation",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("stored_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("member_id"),
    )


def downgrade() -> None:
    op.drop_table("member_explanation")
    op.drop_column("account", "last_seen_at")  # native (SQLite >= 3.35): no table copy
