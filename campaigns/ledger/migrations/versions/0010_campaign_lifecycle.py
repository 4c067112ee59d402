"""campaign lifecycle: paused / ended decisions, definition versions, the version of an action

A campaign's state is derived where it can be (validating, running) and stored where it is a
decision of its manager (`campaign.paused_at`, `campaign.ended_at`). Each campaign gets its
definition's versions (`campaignversion`): existing campaigns start at version 1, with the
fingerprint they run and the day they were registered. `action.definition_version` records
the version that planned an action (NULL for actions older than this migration).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paused_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("action", schema=None) as batch_op:
        batch_op.add_column(sa.Column("definition_version", sa.Integer(), nullable=True))
    op.create_table(
        "campaignversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaign.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "version", name="uq_campaign_version"),
    )
    day = (
        "CAST(registered_at AS DATE)"
        if op.get_bind().dialect.name == "postgresql"
        else "DATE(registered_at)"
    )
    op.execute(
        "INSERT INTO campaignversion "
        "(campaign_id, version, definition_sha256, effective_on, recorded_at) "
        f"SELECT id, 1, definition_sha256, {day}, registered_at FROM campaign"
    )


def downgrade() -> None:
    op.drop_table("campaignversion")
    # Native DROP COLUMN (SQLite >= 3.35), as 0008 does: a batch copy of `campaign` or `action`
    # would drop a table other rows still point at, which foreign keys refuse.
    op.drop_column("action", "definition_version")
    op.drop_column("campaign", "ended_at")
    op.drop_column("campaign", "paused_at")
