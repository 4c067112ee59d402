"""action(provider_id) and action(claimed_by) indexed only where set

Both columns are NULL when an action is planned and every lookup asks for a value (a provider's
callback, an adviser's calls): indexing the NULLs cost every planned action two index entries
for nothing (a launch day plans millions).

Revision ID: 0015_partial
Revises: 0014_skips
Create Date: 2026-12-03 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_partial"
down_revision: str | None = "0014_skips"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SET = {
    "ix_action_provider_id": ("provider_id", "provider_id IS NOT NULL"),
    "ix_action_claimed_by": ("claimed_by", "claimed_by IS NOT NULL"),
}


def upgrade() -> None:
    for name, (column, where) in _SET.items():
        op.drop_index(name, table_name="action")
        op.create_index(
            name,
            "action",
            [column],
            unique=False,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    for name, (column, _) in _SET.items():
        op.drop_index(name, table_name="action")
        op.create_index(name, "action", [column], unique=False)
