"""The text of each file of each version of a campaign's definition, kept in the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from campaigns.ledger.models import DefinitionFile


def store_files(
    *,
    session: Session,
    campaign_id: str,
    version: int,
    files: dict[str, str],
    by: str,
    now: datetime,
) -> None:
    """The files of this version, replacing what it held (a draft is saved again and again)."""
    session.execute(
        delete(DefinitionFile).where(
            col(DefinitionFile.campaign_id) == campaign_id, col(DefinitionFile.version) == version
        )
    )
    for path, text in sorted(files.items()):
        session.add(
            DefinitionFile(
                campaign_id=campaign_id,
                version=version,
                path=path,
                text=text,
                saved_by=by,
                saved_at=now,
            )
        )
    session.flush()


def files_of(*, session: Session, campaign_id: str, version: int) -> dict[str, str]:
    """The files of one version by path (campaign.yaml first); empty when none were kept."""
    rows = session.exec(
        select(DefinitionFile).where(
            DefinitionFile.campaign_id == campaign_id, DefinitionFile.version == version
        )
    ).all()
    return dict(sorted(((r.path, r.text) for r in rows), key=lambda kv: kv[0] != "campaign.yaml"))


def has_files(*, session: Session, campaign_id: str, version: int) -> bool:
    """Whether this version's files are kept."""
    return (
        session.exec(
            select(DefinitionFile.id)
            .where(DefinitionFile.campaign_id == campaign_id, DefinitionFile.version == version)
            .limit(1)
        ).first()
        is not None
    )
