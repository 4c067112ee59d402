"""Which goal rows of the ledger say that a campaign's goal is reached for a person."""

from __future__ import annotations

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from campaigns.definition.goals import EnrolmentGoal, Goal
from campaigns.ledger.models import OBSERVED_CHANNEL, Enrolment


def goal_reached(campaign_id: str, goal: Goal) -> ColumnElement[bool]:
    """A condition on `Enrolment`: the rows that stop this campaign for their person.

    The campaign's own goal rows always; for an enrolment goal, also any enrolment in its
    programme, whichever campaign's feed brought it (an enrolled person is not asked to
    enrol again). A care act or registry fact observed for another campaign never counts:
    each campaign observes its own. Measurement credits the campaign's own rows only.
    """
    own = col(Enrolment.campaign_id) == campaign_id
    if isinstance(goal, EnrolmentGoal):
        programme = and_(
            col(Enrolment.programme) == goal.programme,
            col(Enrolment.channel) != OBSERVED_CHANNEL,
        )
        return or_(own, programme)
    return own
