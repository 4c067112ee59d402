"""The launch day: members with no history planned in SQL, a class of alike members at a time.

On a wave's launch day every member is new: no action yet, and their first steps depend only on
their anchor date, their holdout draw, their priority and which contact details they have.
The members of a batch fall into a few such classes; the pure planner and the contact policy
decide once per class (the same functions the member-by-member path calls), and one
`INSERT … SELECT` writes every member's rows. A member with anything that could make the
decision personal (a goal row, a death, an opposition, a contact in the pressure windows, any
action) is left to the member-by-member path, as is a class whose plan closes the member or
defers a step. `tests/test_fresh_tick.py` holds the two paths equal on random members.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    column,
    exists,
    func,
    literal,
    not_,
    select,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from campaigns.cascade.planner import MemberState, plan
from campaigns.cascade.scope import batch_members, nothing_personal
from campaigns.cascade.verdict import policy_verdict
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.actions import action_key_sql, insert_new_actions
from campaigns.ledger.db import plan_each_statement
from campaigns.ledger.models import (
    QUEUED,
    SKIPPED,
    Action,
    Member,
    Person,
)
from campaigns.ledger.vocabulary import SUCCESS_STATES
from campaigns.policy.calendar import add_working_days
from campaigns.policy.decision import Facts, Pressure

# What the first steps of a member without history depend on (besides the day).
_CLASS = ("anchor", "holdout", "priority", "phone", "email", "address", "ameli")
# Members per INSERT: two bound values each, within SQLite's 32,766.
_CHUNK = 10_000


@dataclass(frozen=True)
class FreshPass:
    """What the SQL pass did: the members it planned (or found with nothing due), the counts."""

    handled: frozenset[int]
    counts: Counter[str]


def _facts() -> dict[str, Any]:
    """A member's class, as SQL over member and person (the policy's `load_facts`, in SQL)."""
    return {
        "anchor": col(Member.anchor_date),
        "holdout": col(Member.holdout),
        "priority": col(Member.priority),
        "phone": and_(col(Person.telephone).is_not(None), not_(col(Person.phone_invalid))),
        "email": and_(col(Person.email).is_not(None), not_(col(Person.email_invalid))),
        "address": and_(
            func.json_array_length(col(Person.address_lines)) > 0,
            not_(col(Person.address_invalid)),
        ),
        "ameli": col(Person.compte_ameli),
    }


def _fresh(
    session: Session,
    definition: CampaignDefinition,
    lo: int,
    hi: int,
    only: Sequence[int] | None,
    today: date,
    pressure: Pressure,
) -> list[ColumnElement[bool]]:
    """Members in [lo, hi] (and in `only`) whose first plan cannot depend on anything but
    their class."""
    other = aliased(Action)
    since = today - timedelta(days=max(pressure.calls_days, pressure.contacts_days))
    return [
        *batch_members(session, definition.id, lo, hi, only),
        *nothing_personal(definition),
        ~exists().where(col(Action.member_id) == col(Member.id)),
        # Any contact (of any campaign) in the pressure windows: the policy must count it.
        ~exists().where(
            col(other.person_id) == col(Member.person_id),
            col(other.done_on) > since,
            col(other.state).in_(sorted(SUCCESS_STATES)),
        ),
    ]


def _class_rows(
    definition: CampaignDefinition, cls: tuple[Any, ...], today: date, pressure: Pressure
) -> list[tuple[str, str, str, str | None]] | None:
    """The rows (step, channel, state, reason) the planner and the policy write for a class,
    or None when its plan is not a plain first day (an exit, a deferral, a later due date)."""
    c = dict(zip(_CLASS, cls, strict=True))
    state = MemberState(
        anchor_date=c["anchor"],
        entered_on=today,
        departement="",
        holdout=bool(c["holdout"]),
        has_phone=bool(c["phone"]),
        has_compte_ameli=bool(c["ameli"]),
        has_email=bool(c["email"]),
        has_postal_address=bool(c["address"]),
        priority=bool(c["priority"]),
    )
    decided = plan(state, today, definition, add_working_days)
    if decided.exit is not None:
        return None
    facts = Facts(
        departement="",
        phone_ok=state.has_phone,
        email_ok=state.has_email,
        address_ok=state.has_postal_address,
        compte_ameli=state.has_compte_ameli,
    )
    rows: list[tuple[str, str, str, str | None]] = []
    for a in decided.new_actions:
        if a.attempt != 1 or a.due_on != today or a.due_at is not None:
            return None
        verdict = policy_verdict(a, facts, definition, today, pressure)
        if verdict.temporary:
            return None
        ok = verdict.allowed
        reason = a.reason if ok else verdict.reason
        rows.append((a.step, a.channel, QUEUED if ok else SKIPPED, reason))
    rows += [(s.step, s.channel, SKIPPED, s.reason) for s in decided.skips]
    return rows


def _pairs(session: Session, members: list[tuple[int, int]]) -> Any:
    """(member id, class number) pairs as a table, in two bound values (a VALUES list of
    thousands of rows costs more to compile than the insert takes to run)."""
    ids = [m for m, _ in members]
    classes = [n for _, n in members]
    if session.get_bind().dialect.name == "postgresql":
        return (
            func.unnest(
                bindparam("fresh_ids", ids, type_=ARRAY(Integer)),
                bindparam("fresh_cls", classes, type_=ARRAY(Integer)),
            )
            .table_valued("member_id", "cls")
            .render_derived(name="fresh_member")
        )
    pairs = func.json_each(bindparam("fresh_pairs", json.dumps(members))).table_valued("value")
    return select(
        func.json_extract(pairs.c.value, "$[0]").label("member_id"),
        func.json_extract(pairs.c.value, "$[1]").label("cls"),
    ).subquery("fresh_member")


def _write(
    session: Session,
    definition: CampaignDefinition,
    plans: list[tuple[Any, ...]],
    members: list[tuple[int, int]],
    today: date,
    now: datetime,
    version: int | None,
) -> int:
    """One `INSERT … SELECT`: each member's class rows (members as (id, class number))."""
    plan = (
        values(
            column("cls", Integer),
            column("step", String),
            column("channel", String),
            column("state", String),
            column("reason", String),
            name="fresh_plan",
        )
        .data(plans)
        .cte("fresh_plan")
    )
    who = _pairs(session, members)
    stamp = Action.__table__.c.created_at.type  # type: ignore[attr-defined]
    key = action_key_sql(definition.id, col(Member.person_id), plan.c.step, 1)
    chosen = (
        select(
            literal(definition.id),
            col(Member.id),
            col(Member.person_id),
            col(Member.priority),
            col(Member.anchor_date),
            literal(now, stamp),
            literal(now, stamp),
            key,
            plan.c.step,
            plan.c.channel,
            literal(1, Integer),
            literal(today, Date),
            plan.c.state,
            plan.c.reason,
            cast(literal(version, Integer), Integer),
        )
        .select_from(who)
        .join(Member, col(Member.id) == who.c.member_id)
        .join(plan, plan.c.cls == who.c.cls)
        .where(literal(True))  # SQLite: an INSERT … SELECT … ON CONFLICT needs a WHERE
    )
    names = [
        "campaign_id", "member_id", "person_id", "priority", "anchor_date", "created_at",
        "updated_at", "key", "step", "channel", "attempt", "due_on", "state", "reason",
        "definition_version",
    ]  # fmt: skip
    written: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        insert_new_actions(session)
        .from_select(names, chosen)
        .execution_options(preserve_rowcount=True)  # SQLAlchemy counts only on demand
    )
    if written.rowcount >= 0:
        return written.rowcount
    # pysqlite counts no statement that starts with WITH: ask SQLite itself.
    return int(session.execute(select(func.changes())).scalar_one())


def plan_fresh(
    *,
    session: Session,
    definition: CampaignDefinition,
    lo: int,
    hi: int,
    today: date,
    now: datetime,
    pressure: Pressure,
    version: int | None,
    only: Sequence[int] | None = None,
) -> FreshPass:
    """Plan the batch's members without history in SQL; the caller plans the others."""
    if pressure.max_calls <= 0 or pressure.max_contacts <= 0:
        return FreshPass(frozenset(), Counter())  # every contact deferred: the member path
    facts = _facts()
    found = session.execute(
        select(col(Member.id), *facts.values())
        .join(Person, col(Person.id) == col(Member.person_id))
        .where(*_fresh(session, definition, lo, hi, only, today, pressure))
    ).all()
    if not found:
        return FreshPass(frozenset(), Counter())
    by_class: dict[tuple[Any, ...], list[int]] = {}
    for mid, anchor, *flags in found:
        by_class.setdefault((anchor, *(bool(v) for v in flags)), []).append(mid)
    planned = {cls: _class_rows(definition, cls, today, pressure) for cls in by_class}
    handled = frozenset(m for cls, ids in by_class.items() if planned[cls] is not None for m in ids)
    counts: Counter[str] = Counter()
    counts["members"] = len(handled)
    number = {cls: n for n, cls in enumerate(c for c, rows in planned.items() if rows)}
    for cls in number:
        for step, _, state, _ in planned[cls] or ():
            counts[f"{state}_{step}"] += len(by_class[cls])
    if not number:
        return FreshPass(handled, counts)
    plans = [(n, *row) for cls, n in number.items() for row in planned[cls] or ()]
    members = [(m, n) for cls, n in number.items() for m in by_class[cls]]
    written = 0
    plan_each_statement(session, on=False)  # the inserts' foreign-key checks: cached plans
    for i in range(0, len(members), _CHUNK):
        written += _write(session, definition, plans, members[i : i + _CHUNK], today, now, version)
    plan_each_statement(session)
    counts["actions_written"] = written
    return FreshPass(handled, counts)
