"""The quiet day: members the planner would leave untouched today, found without loading them.

On most days most members wait: their next step's window has not opened, or what was planned
is still queued. One query finds them from columns alone, so the tick loads, and plans, only
the others — and, over a whole campaign, batches only the others (`busy_members`). The rule is
conservative (any fact that could make the planner act sends the member to the planner), and
the pure planner stays the reference: a property test holds that every member found quiet here
gets an empty plan from it (tests/test_properties_tick.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlmodel import Session, col

from campaigns.cascade.planner import campaign_ended, notice_step_id, step_window
from campaigns.cascade.scope import batch_members, nothing_personal
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.db import among
from campaigns.ledger.models import Action, Member, Person
from campaigns.ledger.vocabulary import SUCCESS_STATES, ActionState

# An attempt and its state as one number (attempt * 16 + state): its maximum is the state of
# the step's last attempt, in one aggregate both backends compute.
_STATES = list(ActionState)
_SPAN = 16
assert len(_STATES) < _SPAN
_SUCCESS = [_STATES.index(s) for s in SUCCESS_STATES]


def _anchors_where(anchors: Sequence[date], chosen: list[date]) -> ColumnElement[bool]:
    """Members whose anchor date is one of `chosen` (of the scope's sorted `anchors`)."""
    if not chosen:
        return false()
    if len(chosen) == len(anchors):
        return true()
    if chosen == list(anchors[: len(chosen)]):
        # The windows grow with the anchor: the anchors chosen are the earliest ones.
        return col(Member.anchor_date) <= chosen[-1]
    return col(Member.anchor_date).in_(chosen)


def _members(
    session: Session,
    definition: CampaignDefinition,
    today: date,
    lo: int,
    hi: int,
    only: Sequence[int] | None,
    quiet: bool,
) -> list[int]:
    """Ids of the active members in [lo, hi] (and in `only`) the rule finds quiet (or not)."""
    scope = batch_members(session, definition.id, lo, hi, only)
    mine = [
        col(Action.campaign_id) == definition.id,
        col(Action.member_id) >= lo,
        col(Action.member_id) <= hi,
    ]
    if only is not None:
        mine.append(among(session, col(Action.member_id), only))
    query = select(col(Member.id)).where(*scope).order_by(col(Member.id))
    if campaign_ended(definition, today):
        return [] if quiet else _ids(session, query)
    anchors = sorted(
        a for (a,) in session.execute(select(col(Member.anchor_date)).where(*scope).distinct())
    )
    windows = {a: [step_window(definition, s, a) for s in definition.cascade] for a in anchors}
    # Past the last window the planner closes the member (or skips what is left).
    expired = _anchors_where(
        anchors, [a for a in anchors if today > max(end for _, end in windows[a])]
    )
    state = case(*((col(Action.state) == s, n) for n, s in enumerate(_STATES)), else_=_SPAN - 1)

    def last(step_id: str) -> ColumnElement[int]:
        return func.max(case((col(Action.step) == step_id, col(Action.attempt) * _SPAN + state)))

    notices = [notice_step_id(s) for s in definition.cascade if s.notify is not None]
    seen = (
        select(
            col(Action.member_id).label("member_id"),
            *(last(s.id).label(f"last_{i}") for i, s in enumerate(definition.cascade)),
            *(func.max(case((col(Action.step) == n, 1))).label(f"notice_{n}") for n in notices),
        )
        .where(*mine)
        .group_by(col(Action.member_id))
        .subquery("seen")
    )
    waiting = []
    for i, step in enumerate(definition.cascade):
        attempt = seen.c[f"last_{i}"]
        played = and_(attempt.is_not(None), (attempt % _SPAN).in_(_SUCCESS))
        if step.channel == "phone":
            over: ColumnElement[bool] = false()  # an outcome to act on (retry, callback, exit)
        elif step.notify is not None:
            over = seen.c[f"notice_{notice_step_id(step)}"].is_not(None)  # its notice planned
        else:
            over = true()
        opened = _anchors_where(anchors, [a for a in anchors if windows[a][i][0] <= today])
        waiting.append(
            or_(
                and_(attempt.is_(None), not_(opened)),  # not due yet
                and_(attempt.is_not(None), not_(played)),  # queued, or ended (skipped, failed…)
                and_(played, over),
            )
        )
    rule = and_(
        *nothing_personal(definition),
        not_(expired),
        or_(col(Member.holdout), and_(*waiting)),
    )
    query = (
        query.join(Person, col(Person.id) == col(Member.person_id))
        .outerjoin(seen, seen.c.member_id == col(Member.id))
        # Every part of the rule is TRUE or FALSE, never NULL: NOT gives its exact complement.
        .where(rule if quiet else not_(rule))
    )
    return _ids(session, query)


def _ids(session: Session, query: Select[tuple[int | None]]) -> list[int]:
    # Millions of ids on a launch day: read as plain values, not through the ORM (2× faster).
    return [i for i in session.connection().execute(query).scalars() if i is not None]


def quiet_members(
    *,
    session: Session,
    definition: CampaignDefinition,
    lo: int,
    hi: int,
    today: date,
    only: Sequence[int] | None = None,
) -> set[int]:
    """Ids of active members in [lo, hi] (and in `only`) whose plan today is certainly empty.

    Quiet: no goal row, no death, no opposition of any kind, the cascade's last window not
    passed, and each step not due yet, waiting on its last attempt, or over (a message whose
    notice is planned; a call never is: its outcome is the planner's); a holdout member is quiet
    until the last window closes. Everyone else goes to the planner.
    """
    return set(_members(session, definition, today, lo, hi, only, quiet=True))


def busy_members(
    *, session: Session, definition: CampaignDefinition, lo: int, hi: int, today: date
) -> list[int]:
    """Ids of active members in [lo, hi] the planner may have something for today, in order:
    the exact complement of `quiet_members`, so that a tick batches only them."""
    return _members(session, definition, today, lo, hi, None, quiet=False)
