"""The contact policy's verdict on an action the planner wants, as the tick applies it."""

from __future__ import annotations

from datetime import date, datetime, time

from campaigns.cascade.planner import NewAction
from campaigns.clock import PARIS
from campaigns.definition.model import CampaignDefinition
from campaigns.policy.decision import NOTICE_SUFFIX, Decision, Facts, Pressure, decide


def policy_verdict(
    a: NewAction, f: Facts, definition: CampaignDefinition, today: date, pressure: Pressure
) -> Decision:
    """The contact policy for an action the planner wants, on the day it is due.

    Notices go with their message (never counted nor blocked by pressure); a step's own
    retries and callbacks are left to its attempt cap (the policy ignores its own attempts).
    """
    if a.step.endswith(NOTICE_SUFFIX):
        return Decision(allowed=True)
    day = max(a.due_on, today)
    return decide(
        facts=f,
        channel=a.channel,
        now=datetime.combine(day, time(12), tzinfo=PARIS),
        campaign=definition.id,
        step=a.step,
        pressure=pressure,
    )
