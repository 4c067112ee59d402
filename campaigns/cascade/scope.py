"""What a tick's batch covers, and what no member of a shared plan may carry, as SQL conditions.

The quiet rule, the launch day's SQL pass and the member-by-member path ask these same
questions: one wording of each, so that they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists
from sqlmodel import Session, col

from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.db import among
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.models import ACTIVE, Enrolment, Member, Opposition, Person


def batch_members(
    session: Session, campaign_id: str, lo: int, hi: int, only: Sequence[int] | None = None
) -> list[ColumnElement[bool]]:
    """The campaign's active members with ids in [lo, hi] (and in `only`, when given)."""
    scope = [
        col(Member.campaign_id) == campaign_id,
        col(Member.status) == ACTIVE,
        col(Member.id) >= lo,
        col(Member.id) <= hi,
    ]
    if only is not None:
        scope.append(among(session, col(Member.id), only))
    return scope


def nothing_personal(definition: CampaignDefinition) -> list[ColumnElement[bool]]:
    """The person (joined) is alive, has no goal row for the campaign and no opposition of any
    kind: nothing that could make their plan differ from their neighbours'."""
    return [
        col(Person.deceased_on).is_(None),
        ~exists().where(
            col(Enrolment.ben_nir_psa) == col(Person.ben_nir_psa),
            col(Enrolment.ben_rng_gem) == col(Person.ben_rng_gem),
            goal_reached(definition.id, definition.goal),
        ),
        ~exists().where(
            col(Opposition.ben_nir_psa) == col(Person.ben_nir_psa),
            col(Opposition.ben_rng_gem) == col(Person.ben_rng_gem),
        ),
    ]
