"""Campaigns known to the ledger, and their objectives."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlmodel import Session, col, select

from campaigns.clock import utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.models import Campaign, Objective


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
) -> Campaign:
    """Create or refresh the campaign row; seed objectives from the definition once.

    A campaign without local validation is launched when registered; with it, when its
    first list is approved (or here, with `launched=True`, when it already was elsewhere).
    """
    now = now or utcnow()
    sha = definition_sha256(definition)
    row = session.get(Campaign, definition.id)
    if row is None:
        row = Campaign(
            id=definition.id, name=definition.name, definition_sha256=sha, registered_at=now
        )
        session.add(row)
        session.flush()
    elif row.definition_sha256 != sha:
        row.definition_sha256 = sha
        row.name = definition.name
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
