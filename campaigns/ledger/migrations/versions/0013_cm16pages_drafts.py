"""campaign drafts and definition files: campaigndraft, definitionfile, campaignversion.recorded_by

A campaign made in the console is a draft (`campaigndraft`) until its manager marks it ready;
the text of each file of each version of a definition (campaign.yaml and its templates) is kept
in `definitionfile`, so a version can be read back, not only recognised by its fingerprint.
The versions recorded so far get their files from the shipped folder whose definition has
their fingerprint (a version whose folder has since changed cannot be recovered and stays
without files). `campaignversion.recorded_by` names who made a version in the console.

Revision ID: 0013_cm16pages
Revises: 0012
Create Date: 2026-12-02 17:40:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

from campaigns.definition.files import YAML, folder_files
from campaigns.definition.model import DEFINITIONS_DIR, DefinitionError, parse_definition
from campaigns.ledger.registry import definition_sha256

revision: str = "0013_cm16pages"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _shipped() -> dict[str, dict[str, str]]:
    """The files of each valid shipped folder, by its definition's fingerprint."""
    out: dict[str, dict[str, str]] = {}
    for folder in sorted(DEFINITIONS_DIR.iterdir()):
        if not (folder / YAML).is_file():
            continue
        try:
            out[definition_sha256(parse_definition(folder / YAML))] = folder_files(folder)
        except (DefinitionError, OSError, UnicodeDecodeError):
            continue  # a broken folder has no version in any ledger
    return out


def upgrade() -> None:
    with op.batch_alter_table("campaignversion", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    op.create_table(
        "campaigndraft",
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ready_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    files = op.create_table(
        "definitionfile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("saved_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("saved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "version", "path", name="uq_definition_file"),
    )
    op.create_index("ix_definitionfile_campaign_id", "definitionfile", ["campaign_id"])
    versions = (
        op.get_bind()
        .execute(sa.text("SELECT campaign_id, version, definition_sha256 FROM campaignversion"))
        .all()
    )
    if not versions:
        return
    shipped = _shipped()
    now = datetime.now(UTC)
    rows = [
        {
            "campaign_id": cid,
            "version": version,
            "path": path,
            "text": text,
            "saved_by": "migration",
            "saved_at": now,
        }
        for cid, version, sha in versions
        for path, text in shipped.get(sha, {}).items()
    ]
    if rows:
        op.bulk_insert(files, rows)


def downgrade() -> None:
    op.drop_index("ix_definitionfile_campaign_id", table_name="definitionfile")
    op.drop_table("definitionfile")
    op.drop_table("campaigndraft")
    op.drop_column("campaignversion", "recorded_by")
