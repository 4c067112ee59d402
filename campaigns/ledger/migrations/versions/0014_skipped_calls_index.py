"""index memberevent(on, kind): the claim's "skipped today" rule reads today's skips only

Every claim asks whether the adviser gave this member's call back today ("Passer"); without
this index PostgreSQL answers it with a sequential scan of every member event.

Revision ID: 0014_skips
Revises: 0013_cm16pages
Create Date: 2026-12-03 17:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_skips"
down_revision: str | None = "0013_cm16pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_memberevent_on_kind", "memberevent", ["on", "kind"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_memberevent_on_kind", table_name="memberevent")
