"""The daily cascade tick: plan every active member in batches and write the decisions."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, tuple_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from campaigns.calendar import add_working_days
from campaigns.clock import utcnow
from campaigns.db import session_scope
from campaigns.definition import CampaignDefinition
from campaigns.ledger import action_key, insert_actions
from campaigns.lifecycle import close_member
from campaigns.models import (
    ACTIVE,
    QUEUED,
    SKIPPED,
    Action,
    Enrolment,
    Member,
    Opposition,
    Person,
)
from campaigns.planner import ActionView, MemberState, plan


def member_id_batches(
    *, session: Session, campaign_id: str, batch_size: int
) -> list[tuple[int, int]]:
    """Id ranges of active members, each holding at most `batch_size` of them."""
    ids: list[int] = [
        i
        for i in session.exec(
            select(Member.id)
            .where(Member.campaign_id == campaign_id, Member.status == ACTIVE)
            .order_by(col(Member.id))
        ).all()
        if i is not None
    ]
    return [
        (ids[i], ids[min(i + batch_size, len(ids)) - 1]) for i in range(0, len(ids), batch_size)
    ]


def _states(
    session: Session, definition: CampaignDefinition, lo: int, hi: int, today: date
) -> list[tuple[Member, Person, MemberState]]:
    rows = session.exec(
        select(Member, Person)
        .join(Person, col(Person.id) == col(Member.person_id))
        .where(
            Member.campaign_id == definition.id,
            Member.status == ACTIVE,
            col(Member.id) >= lo,
            col(Member.id) <= hi,
        )
    ).all()
    if not rows:
        return []
    member_ids = [m.id for m, _ in rows]
    actions: dict[int, list[ActionView]] = defaultdict(list)
    for act in session.exec(select(Action).where(col(Action.member_id).in_(member_ids))):
        actions[act.member_id].append(
            ActionView(
                step=act.step,
                attempt=act.attempt,
                state=act.state,
                due_on=act.due_on,
                outcome=act.outcome,
                done_on=act.done_on,
                callback_at=act.callback_at,
                reason=act.reason,
            )
        )
    keys = [(p.ben_nir_psa, p.ben_rng_gem) for _, p in rows]
    opposed: dict[tuple[str, int], set[str]] = defaultdict(set)
    for a, b, canal in session.exec(
        select(Opposition.ben_nir_psa, Opposition.ben_rng_gem, Opposition.canal).where(
            tuple_(col(Opposition.ben_nir_psa), col(Opposition.ben_rng_gem)).in_(keys),
            col(Opposition.opposed_on) <= today,
        )
    ):
        opposed[(a, b)].add(canal)
    enrolled: dict[tuple[str, int], date] = {}
    for a, b, on in session.exec(
        select(
            col(Enrolment.ben_nir_psa), col(Enrolment.ben_rng_gem), col(Enrolment.enrolled_on)
        ).where(
            Enrolment.programme == definition.goal.programme,
            tuple_(col(Enrolment.ben_nir_psa), col(Enrolment.ben_rng_gem)).in_(keys),
        )
    ):
        enrolled[(a, b)] = on
    out = []
    for m, p in rows:
        key = (p.ben_nir_psa, p.ben_rng_gem)
        out.append(
            (
                m,
                p,
                MemberState(
                    anchor_date=m.anchor_date,
                    entered_on=m.entered_on,
                    departement=p.departement,
                    holdout=m.holdout,
                    active=True,
                    has_phone=bool(p.telephone) and not p.phone_invalid,
                    has_compte_ameli=p.compte_ameli,
                    has_email=bool(p.email) and not p.email_invalid,
                    has_postal_address=bool(p.address_lines) and not p.address_invalid,
                    opposed=frozenset(opposed.get(key, ())),
                    enrolled_on=enrolled.get(key),
                    deceased=p.deceased_on is not None,
                    actions=actions.get(m.id or 0, ()),
                ),
            )
        )
    return out


def tick_batch(
    *,
    session: Session,
    definition: CampaignDefinition,
    lo: int,
    hi: int,
    today: date,
    now: datetime | None = None,
) -> dict[str, int]:
    """Plan and record the day's decisions for active members with ids in [lo, hi]."""
    now = now or utcnow()
    counts: dict[str, int] = defaultdict(int)
    new_rows: list[dict[str, Any]] = []
    for m, p, state in _states(session, definition, lo, hi, today):
        decision = plan(state, today, definition, add_working_days)
        counts["members"] += 1
        if decision.exit is not None:
            close_member(
                session=session,
                member=m,
                status=decision.exit.status,
                reason=decision.exit.reason,
                today=today,
                source="cascade",
                now=now,
            )
            counts[f"left_{decision.exit.status}"] += 1
            continue
        base = {
            "campaign_id": definition.id,
            "member_id": m.id,
            "person_id": p.id,
            "priority": m.priority,
            "anchor_date": m.anchor_date,
            "created_at": now,
            "updated_at": now,
        }
        for a in decision.new_actions:
            new_rows.append(
                {
                    **base,
                    "key": action_key(definition.id, p.id or 0, a.step, a.attempt),
                    "step": a.step,
                    "channel": a.channel,
                    "attempt": a.attempt,
                    "due_on": a.due_on,
                    "due_at": a.due_at,
                    "state": QUEUED,
                    "reason": a.reason,
                }
            )
        for s in decision.skips:
            new_rows.append(
                {
                    **base,
                    "key": action_key(definition.id, p.id or 0, s.step, 1),
                    "step": s.step,
                    "channel": s.channel,
                    "attempt": 1,
                    "due_on": today,
                    "state": SKIPPED,
                    "reason": s.reason,
                }
            )
    created = insert_actions(session, new_rows)
    counts["actions_written"] = created
    for r in new_rows:
        counts[f"{r['state']}_{r['step']}"] += 1
    return dict(counts)


def tick(
    *, engine: Engine, definition: CampaignDefinition, today: date, batch_size: int = 2000
) -> dict[str, int]:
    """The whole tick, one transaction per batch (used outside Prefect; flows map batches)."""
    with session_scope(engine) as s:
        batches = member_id_batches(session=s, campaign_id=definition.id, batch_size=batch_size)
    total: dict[str, int] = defaultdict(int)
    for lo, hi in batches:
        with session_scope(engine) as s:
            for k, v in tick_batch(
                session=s, definition=definition, lo=lo, hi=hi, today=today
            ).items():
                total[k] += v
    total["batches"] = len(batches)
    return dict(total)


def active_members(*, session: Session, campaign_id: str) -> int:
    """How many members are still in the cascade."""
    return int(
        session.exec(
            select(func.count())
            .select_from(Member)
            .where(Member.campaign_id == campaign_id, Member.status == ACTIVE)
        ).one()
    )
