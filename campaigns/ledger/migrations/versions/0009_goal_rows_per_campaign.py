"""goal rows per campaign: enrolment.campaign_id, unique per (person, campaign)

A goal row (an enrolment from a campaign's feed, or an observed care act / registry fact)
is credited to one campaign. Backfill: before this migration an enrolment counted for every
campaign the person was a member of; each existing row is credited to each of those
campaigns (one row per campaign). A row no member matches keeps `campaign_id` NULL: it is
credited to no campaign but still says the person enrolled in its programme.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MEMBERS_OF_ROW = (
    "FROM member JOIN person ON person.id = member.person_id "
    "WHERE person.ben_nir_psa = enrolment.ben_nir_psa "
    "AND person.ben_rng_gem = enrolment.ben_rng_gem"
)


def upgrade() -> None:
    with op.batch_alter_table("enrolment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.drop_constraint("uq_enrolment", type_="unique")
    # The first campaign the person is a member of takes the existing row…
    op.execute(
        f"UPDATE enrolment SET campaign_id = (SELECT MIN(member.campaign_id) {_MEMBERS_OF_ROW})"
    )
    # … and every other campaign of theirs gets its own copy.
    op.execute(
        "INSERT INTO enrolment "
        "(campaign_id, ben_nir_psa, ben_rng_gem, programme, enrolled_on, channel, source) "
        "SELECT DISTINCT member.campaign_id, e.ben_nir_psa, e.ben_rng_gem, e.programme, "
        "e.enrolled_on, e.channel, e.source "
        "FROM enrolment AS e "
        "JOIN person ON person.ben_nir_psa = e.ben_nir_psa AND person.ben_rng_gem = e.ben_rng_gem "
        "JOIN member ON member.person_id = person.id "
        "WHERE member.campaign_id <> e.campaign_id"
    )
    with op.batch_alter_table("enrolment", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_enrolment", ["ben_nir_psa", "ben_rng_gem", "campaign_id"]
        )
        batch_op.create_index("ix_enrolment_campaign", ["campaign_id", "enrolled_on"])
        batch_op.create_index("ix_enrolment_programme", ["ben_nir_psa", "ben_rng_gem", "programme"])


def downgrade() -> None:
    # Back to one row per (person, programme): the copies made per campaign go.
    op.execute(
        "DELETE FROM enrolment WHERE id NOT IN (SELECT MIN(id) FROM enrolment "
        "GROUP BY ben_nir_psa, ben_rng_gem, programme)"
    )
    with op.batch_alter_table("enrolment", schema=None) as batch_op:
        batch_op.drop_index("ix_enrolment_programme")
        batch_op.drop_index("ix_enrolment_campaign")
        batch_op.drop_constraint("uq_enrolment", type_="unique")
        batch_op.create_unique_constraint(
            "uq_enrolment", ["ben_nir_psa", "ben_rng_gem", "programme"]
        )
        batch_op.drop_column("campaign_id")
