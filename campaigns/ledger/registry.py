"""Campaigns known to the ledger, and their objectives."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from campaigns.clock import paris_today, utcnow
from campaigns.definition.files import folder_files
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.definition_files import has_files, store_files
from campaigns.ledger.models import Campaign, CampaignVersion, Objective


def definition_sha256(definition: CampaignDefinition) -> str:
    """A fingerprint of the definition, so the ledger knows which version ran."""
    return hashlib.sha256(
        json.dumps(definition.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def register_campaign(
    *,
    session: Session,
    definition: CampaignDefinition,
    objective_scale: float = 1.0,
    launched: bool = False,
    now: datetime | None = None,
    effective_on: date | None = None,
    folder: Path | None = None,
) -> Campaign:
    """Create or refresh the campaign row; seed objectives from the definition once.

    A campaign without local validation is launched when registered; with it, when its
    first list is approved (or here, with `launched=True`, when it already was elsewhere).
    A changed definition is a new version from `effective_on` (default: today) once the
    campaign was launched; before, its only version is refreshed in place.
    """
    now = now or utcnow()
    sha = definition_sha256(definition)
    row = session.get(Campaign, definition.id)
    changed = row is None or row.definition_sha256 != sha
    if row is None:
        row = Campaign(
            id=definition.id, name=definition.name, definition_sha256=sha, registered_at=now
        )
        session.add(row)
        session.flush()
        _record_version(session, row, sha, effective_on or paris_today(now), now)
    elif row.definition_sha256 != sha:
        row.definition_sha256 = sha
        row.name = definition.name
        _record_version(session, row, sha, effective_on or paris_today(now), now)
    if folder is not None:
        _keep_files(session, row, folder, now, changed=changed)
    if row.launched_at is None and (launched or not definition.validation.required):
        row.launched_at = now
    has_objectives = session.exec(
        select(Objective.id).where(Objective.campaign_id == definition.id).limit(1)
    ).first()
    if has_objectives is None:
        note = "from campaign.yaml"
        if objective_scale != 1.0:
            note += f", scaled by {objective_scale:.6f}"
        for echelon, target in definition.objectives.counts().items():
            session.add(
                Objective(
                    campaign_id=definition.id,
                    echelon=echelon,
                    target=round(target * objective_scale),
                    set_at=now,
                    set_by="definition",
                    note=note,
                )
            )
    return row


def current_objectives(*, session: Session, campaign_id: str) -> dict[str, int]:
    """The latest objective per échelon."""
    rows = session.exec(
        select(Objective)
        .where(Objective.campaign_id == campaign_id)
        .order_by(col(Objective.set_at), col(Objective.id))
    ).all()
    return {r.echelon: r.target for r in rows}


def registered_campaigns(*, session: Session) -> list[Campaign]:
    """Every campaign in the ledger, by id."""
    return list(session.exec(select(Campaign).order_by(col(Campaign.id))).all())


def _latest(session: Session, campaign_id: str) -> CampaignVersion | None:
    return session.exec(
        select(CampaignVersion)
        .where(CampaignVersion.campaign_id == campaign_id)
        .order_by(col(CampaignVersion.version).desc())
        .limit(1)
    ).first()


def _keep_files(
    session: Session, row: Campaign, folder: Path, now: datetime, *, changed: bool
) -> None:
    """The files of the version this folder is, once (a refreshed draft version: again)."""
    latest = _latest(session, row.id)
    if latest is None or latest.definition_sha256 != row.definition_sha256:
        return
    kept = has_files(session=session, campaign_id=row.id, version=latest.version)
    # A version made in the console keeps the files and the author it was recorded with.
    if kept and (not changed or latest.recorded_by is not None):
        return
    store_files(
        session=session,
        campaign_id=row.id,
        version=latest.version,
        files=folder_files(folder),
        by="definition",
        now=now,
    )


def _record_version(
    session: Session, row: Campaign, sha: str, effective_on: date, now: datetime
) -> None:
    """A new version for a launched campaign; before launch, the one version refreshed.

    A version recorded ahead (an edit made in the console, effective from a date) is that
    version when its date comes: it is not recorded twice.
    """
    ahead = session.exec(
        select(CampaignVersion.id).where(
            CampaignVersion.campaign_id == row.id,
            CampaignVersion.definition_sha256 == sha,
            col(CampaignVersion.recorded_by).is_not(None),
        )
    ).first()
    if ahead is not None:
        return
    latest = _latest(session, row.id)
    if latest is not None and row.launched_at is None:
        latest.definition_sha256, latest.effective_on, latest.recorded_at = sha, effective_on, now
        return
    session.add(
        CampaignVersion(
            campaign_id=row.id,
            version=(latest.version + 1) if latest is not None else 1,
            definition_sha256=sha,
            effective_on=effective_on,
            recorded_at=now,
        )
    )
    session.flush()


def campaign_versions(*, session: Session, campaign_id: str) -> list[CampaignVersion]:
    """The campaign's definition versions, oldest first."""
    return list(
        session.exec(
            select(CampaignVersion)
            .where(CampaignVersion.campaign_id == campaign_id)
            .order_by(col(CampaignVersion.version))
        ).all()
    )


def version_of(*, session: Session, definition: CampaignDefinition) -> int | None:
    """The version number of this very definition (by fingerprint), None if never registered."""
    return session.exec(
        select(CampaignVersion.version)
        .where(
            CampaignVersion.campaign_id == definition.id,
            CampaignVersion.definition_sha256 == definition_sha256(definition),
        )
        .order_by(col(CampaignVersion.version).desc())
        .limit(1)
    ).first()


def halted_campaigns(*, session: Session) -> set[str]:
    """Campaigns whose manager paused or ended them: no new action is planned nor sent."""
    return {
        cid
        for (cid,) in session.execute(
            select(Campaign.id).where(
                col(Campaign.paused_at).is_not(None) | col(Campaign.ended_at).is_not(None)
            )
        )
    }
