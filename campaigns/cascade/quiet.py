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

from campaigns.cascade.planner import campaign_ended, step_window
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.models import ACTIVE, Action, Enrolment, Member, Opposition, Person
from campaigns.ledger.vocabulary import OPEN_STATES


def quiet_members(
    *, session: Session, definition: CampaignDefinition, lo: int, hi: int, today: date
) -> set[int]:
    """Ids of active members in [lo, hi] whose plan today is certainly empty.

    Quiet: no goal row, no death, no opposition of any kind, every action still open, and each
    step either started or not due yet (its window opens after today); a holdout member is
    quiet until the cascade's last window closes. Everyone else goes to the planner.
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
    closed_action = and_(
        col(Action.member_id) == col(Member.id), col(Action.state).not_in(OPEN_STATES)
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
            ~exists().where(closed_action),
        )
    ).all()
    if not candidates:
        return set()
    started: dict[int, set[str]] = defaultdict(set)
    for mid, step in session.execute(
        select(col(Action.member_id), col(Action.step))
        .where(col(Action.member_id) >= lo, col(Action.member_id) <= hi)
        .distinct()
    ):
        started[int(mid)].add(step)
    # Windows depend on the anchor date only: a batch holds few distinct anchors.
    opens: dict[date, list[tuple[str, date]]] = {}
    last_day: dict[date, date] = {}
    quiet: set[int] = set()
    for mid, anchor, holdout in candidates:
        if anchor not in opens:
            windows = [(s.id, step_window(definition, s, anchor)) for s in definition.cascade]
            opens[anchor] = [(sid, start) for sid, (start, _) in windows]
            last_day[anchor] = max(end for _, (_, end) in windows)
        if holdout:
            if today <= last_day[anchor]:
                quiet.add(int(mid))
            continue
        mine = started.get(int(mid), set())
        if all(sid in mine or today < start for sid, start in opens[anchor]):
            quiet.add(int(mid))
    return quiet
