"""The quiet day: members the planner would leave untouched today, found without loading them.

On most days most members wait: their next step's window has not opened, or what was planned
is still queued. One query finds them from columns alone, so the tick loads, and plans, only
the others. The rule is conservative (any fact that could make the planner act sends the
member to the planner), and the pure planner stays the reference: a property test holds that
every member found quiet here gets an empty plan from it (tests/test_properties_tick.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import and_, exists, select
from sqlmodel import Session, col

from campaigns.cascade.planner import campaign_ended, notice_step_id, step_window
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.models import ACTIVE, Action, Enrolment, Member, Opposition, Person
from campaigns.ledger.vocabulary import OPEN_STATES, SUCCESS_STATES


def quiet_members(
    *, session: Session, definition: CampaignDefinition, lo: int, hi: int, today: date
) -> set[int]:
    """Ids of active members in [lo, hi] whose plan today is certainly empty.

    Quiet: no goal row, no death, no opposition of any kind, the cascade's last window not
    passed, and each step not due yet, waiting on its last attempt or over (see `_waiting`);
    a holdout member is quiet until the last window closes. Everyone else goes to the planner.
    """
    if campaign_ended(definition, today):
        return set()
    same_person_enrolment = and_(
        col(Enrolment.ben_nir_psa) == col(Person.ben_nir_psa),
        col(Enrolment.ben_rng_gem) == col(Person.ben_rng_gem),
        goal_reached(definition.id, definition.goal),
    )
    same_person_opposition = and_(
        col(Opposition.ben_nir_psa) == col(Person.ben_nir_psa),
        col(Opposition.ben_rng_gem) == col(Person.ben_rng_gem),
    )
    candidates = session.execute(
        select(col(Member.id), col(Member.anchor_date), col(Member.holdout))
        .join(Person, col(Person.id) == col(Member.person_id))
        .where(
            col(Member.campaign_id) == definition.id,
            col(Member.status) == ACTIVE,
            col(Member.id) >= lo,
            col(Member.id) <= hi,
            col(Person.deceased_on).is_(None),
            ~exists().where(same_person_enrolment),
            ~exists().where(same_person_opposition),
        )
    ).all()
    if not candidates:
        return set()
    # Each step's last attempt, per member: columns only.
    last: dict[int, dict[str, tuple[int, str]]] = defaultdict(dict)
    for mid, step, attempt, state in session.execute(
        select(
            col(Action.member_id), col(Action.step), col(Action.attempt), col(Action.state)
        ).where(col(Action.member_id) >= lo, col(Action.member_id) <= hi)
    ):
        mine = last[int(mid)]
        if step not in mine or attempt > mine[step][0]:
            mine[step] = (attempt, state)
    # Windows depend on the anchor date only: a batch holds few distinct anchors.
    opens: dict[date, list[tuple[str, date]]] = {}
    last_day: dict[date, date] = {}
    quiet: set[int] = set()
    for mid, anchor, holdout in candidates:
        if anchor not in opens:
            windows = [(s.id, step_window(definition, s, anchor)) for s in definition.cascade]
            opens[anchor] = [(sid, start) for sid, (start, _) in windows]
            last_day[anchor] = max(end for _, (_, end) in windows)
        # Past the last window the planner closes the member (or skips what is left).
        if today > last_day[anchor]:
            continue
        if holdout or _waiting(definition, last.get(int(mid), {}), opens[anchor], today):
            quiet.add(int(mid))
    return quiet


def _waiting(
    definition: CampaignDefinition,
    last: dict[str, tuple[int, str]],
    opens: list[tuple[str, date]],
    today: date,
) -> bool:
    """Whether no step asks anything today: each one not due yet, or waiting on its last
    attempt, or over (a letter or message whose notice is already planned counts as over)."""
    for step, (sid, start) in zip(definition.cascade, opens, strict=True):
        if sid not in last:
            if today >= start:
                return False  # due today, or skipped: the planner decides
            continue
        state = last[sid][1]
        if state in OPEN_STATES or state not in SUCCESS_STATES:
            continue  # waiting, or ended (skipped, cancelled, failed): nothing more to plan
        if step.channel == "phone":
            return False  # an outcome to act on (retry, callback, exit)
        if step.notify is not None and notice_step_id(step) not in last:
            return False  # its notice is due
    return True
