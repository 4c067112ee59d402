"""When a step may be played: its window around the member's anchor date.

In the definition layer because both the cascade (which plans the step) and the call list
(which must not offer a call once its step's window has passed) read it.
"""

from __future__ import annotations

from datetime import date, timedelta

from campaigns.definition.model import CampaignDefinition, Step


def _bound(definition: CampaignDefinition, value: date | str | None) -> date | None:
    """A step bound: a date, or the date of a targeting parameter."""
    if value is None or isinstance(value, date):
        return value
    return definition.parameter(value)


def step_window(definition: CampaignDefinition, step: Step, anchor: date) -> tuple[date, date]:
    """The first and last day a step may be played for a member with this anchor date.

    Relative to the anchor, within `not_before` / `not_after`, never after the campaign's end.
    """
    start = anchor + timedelta(days=step.start_days)
    end = anchor + timedelta(days=step.end_days) if step.end_days is not None else None
    for bound in (_bound(definition, step.not_after), definition.dates.end):
        if bound is not None:
            end = bound if end is None else min(end, bound)
    not_before = _bound(definition, step.not_before)
    if not_before is not None:
        start = max(start, not_before)
    assert end is not None  # the definition requires end_days when the campaign has no end
    return start, end
