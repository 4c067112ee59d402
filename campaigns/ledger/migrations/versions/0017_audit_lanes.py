"""audit log in lanes: writers at the same moment chain to different heads

Every audited commit took the one `audit_head` row and held it to its commit, so audited
requests went through one at a time (79–82 % of the busy backends waited on it under load).
The log becomes `LANES` chains, each with its own head; a writer takes the first head no
other transaction holds. Existing events are lane 1 and keep verifying as they were.

Revision ID: 0017_audit_lanes
Revises: 0016_member_ref
Create Date: 2026-12-04 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_audit_lanes"
down_revision: str | None = "0016_member_ref"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
LANES = 8  # campaigns.ledger.audit.LANES when this was written


def upgrade() -> None:
    op.add_column("auditevent", sa.Column("lane", sa.Integer(), nullable=False, server_default="1"))
    op.drop_index("ix_auditevent_seq", table_name="auditevent")
    op.create_index("ix_auditevent_lane_seq", "auditevent", ["lane", "seq"], unique=True)
    for lane in range(2, LANES + 1):
        op.execute(
            f"INSERT INTO audit_head (id, seq, hash) SELECT {lane}, 0, '{GENESIS}' "
            f"WHERE NOT EXISTS (SELECT 1 FROM audit_head WHERE id = {lane})"
        )


def downgrade() -> None:
    # Only a log written in lane 1 goes back to one chain.
    op.execute(f"DELETE FROM audit_head WHERE id > 1 AND seq = 0 AND hash = '{GENESIS}'")
    op.drop_index("ix_auditevent_lane_seq", table_name="auditevent")
    op.create_index("ix_auditevent_seq", "auditevent", ["seq"], unique=True)
    op.drop_column("auditevent", "lane")
