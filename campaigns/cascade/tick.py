"""The daily cascade tick: plan every active member in batches and write the decisions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from campaigns.cascade.fresh import plan_fresh
from campaigns.cascade.planner import (
    ActionView,
    MemberState,
    NewAction,
    Plan,
    campaign_ended,
    plan,
)
from campaigns.cascade.quiet import busy_members, quiet_members
from campaigns.cascade.scope import batch_members
from campaigns.cascade.verdict import policy_verdict
from campaigns.clock import utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.reasons import Reason
from campaigns.ledger.actions import ActionRow, action_key, insert_actions
from campaigns.ledger.bulk import refresh_statistics
from campaigns.ledger.db import among, plan_each_statement, session_scope
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.members import close_member
from campaigns.ledger.models import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    FAILED_RETRYABLE,
    PENDING,
    QUEUED,
    SKIPPED,
    Action,
    Campaign,
    Enrolment,
    Member,
    MemberEvent,
    Person,
    ProviderEvent,
)
from campaigns.ledger.registry import halted_campaigns, version_of
from campaigns.policy.calendar import add_working_days
from campaigns.policy.decision import (
    Decision,
    Facts,
    Pressure,
    load_facts,
    pressure_from,
)
from campaigns.settings import get_settings

# A member event: a step the policy put off (contact pressure), with the day it frees up.
DEFERRED = "contact_deferred"


def _active_range(
    session: Session, campaign_id: str, within: tuple[int, int] | None
) -> tuple[int, int, int]:
    """How many of the campaign's members are active (`within` a partition's range), and the
    first and last of their ids."""
    query = select(func.count(), func.min(Member.id), func.max(Member.id)).where(
        Member.campaign_id == campaign_id, Member.status == ACTIVE
    )
    if within is not None:
        query = query.where(col(Member.id).between(*within))
    n, lo, hi = session.execute(query).one()
    return int(n), int(lo or 0), int(hi or 0)


# A batch: its id range and, when quiet members lie between its own, the ids it plans.
Batch = tuple[int, int, list[int] | None]


def batches_of(busy: list[int], size: int, *, dense: bool) -> list[Batch]:
    """The busy members' ids (sorted) in batches of at most `size`; `dense` when nobody is
    quiet (a launch day): a batch's range says it all, no id list to send."""
    out: list[Batch] = []
    for i in range(0, len(busy), size):
        chunk = busy[i : i + size]
        out.append((chunk[0], chunk[-1], None if dense else chunk))
    return out


def _active_ids(
    session: Session, campaign_id: str, lo: int, hi: int, only: Sequence[int] | None = None
) -> list[int]:
    """Ids of the campaign's active members in [lo, hi] (and in `only`)."""
    query = select(Member.id).where(*batch_members(session, campaign_id, lo, hi, only))
    return [i for i in session.exec(query).all() if i is not None]


def _read_keys(session: Session, member_ids: list[int]) -> set[str]:
    """Keys of the members' mailbox messages the mailbox reported read."""
    return {
        k
        for (k,) in session.execute(
            select(Action.key)
            .join(ProviderEvent, col(ProviderEvent.ref) == col(Action.key))
            .where(
                col(Action.member_id).in_(member_ids),
                Action.channel == "mailbox",
                ProviderEvent.provider == "mailbox",
                ProviderEvent.kind == "read",
            )
        )
    }


def uses_reads(definition: CampaignDefinition) -> bool:
    """Whether a step's conditions look at mailbox reads (`read:<step>`)."""
    return any(f.startswith("read:") for s in definition.cascade for f in (*s.requires, *s.unless))


def action_views(
    session: Session, member_ids: list[int], *, reads: bool = False
) -> dict[int, list[ActionView]]:
    """Every action of the members, as the planner reads them (with mailbox reads if asked)."""
    actions: dict[int, list[ActionView]] = defaultdict(list)
    read = _read_keys(session, member_ids) if reads else set()
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
                read=act.key in read,
            )
        )
    return actions


def _enrolment_days(
    session: Session, definition: CampaignDefinition, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], date]:
    """The day each person reached the campaign's goal (any day, future included)."""
    enrolled: dict[tuple[str, int], date] = {}
    for a, b, on in session.exec(
        select(
            col(Enrolment.ben_nir_psa), col(Enrolment.ben_rng_gem), col(Enrolment.enrolled_on)
        ).where(
            goal_reached(definition.id, definition.goal),
            tuple_(col(Enrolment.ben_nir_psa), col(Enrolment.ben_rng_gem)).in_(keys),
        )
    ):
        enrolled[(a, b)] = on
    return enrolled


@dataclass(frozen=True, slots=True)
class BatchMember:
    """One active member of the batch, as the planner and the policy see them."""

    member: Member
    person: Person
    facts: Facts
    state: MemberState


def _states(
    session: Session,
    definition: CampaignDefinition,
    lo: int,
    hi: int,
    today: date,
    pressure: Pressure | None = None,
    skip: set[int] | frozenset[int] = frozenset(),
    only: Sequence[int] | None = None,
) -> list[BatchMember]:
    """The batch's active members (in `only`) as the planner sees them (but the `skip` ids)."""
    scope = batch_members(session, definition.id, lo, hi, only)
    if skip:
        wanted = [i for i in _active_ids(session, definition.id, lo, hi, only) if i not in skip]
        if not wanted:
            return []
        scope = batch_members(session, definition.id, lo, hi, wanted)
    rows = session.exec(
        select(Member, Person)
        .join(Person, col(Person.id) == col(Member.person_id))
        # The planner needs no NIR, number or address: they stay encrypted, unread.
        .options(defer(Person.nir), defer(Person.telephone), defer(Person.email))  # type: ignore[arg-type]
        .where(*scope)
    ).all()
    if not rows:
        return []
    actions = action_views(session, [m.id or 0 for m, _ in rows], reads=uses_reads(definition))
    keys = [(p.ben_nir_psa, p.ben_rng_gem) for _, p in rows]
    # The contact policy's facts (oppositions effective today, death, contact details,
    # contacts across every campaign in the pressure windows), for the whole batch at once.
    facts = load_facts(
        session, [p for _, p in rows], today=today, pressure=pressure, enrolments=False
    )
    enrolled = _enrolment_days(session, definition, keys)
    out = []
    for m, p in rows:
        key = (p.ben_nir_psa, p.ben_rng_gem)
        f = facts[p.id or 0]
        out.append(
            BatchMember(
                m,
                p,
                f,
                MemberState(
                    anchor_date=m.anchor_date,
                    entered_on=m.entered_on,
                    departement=p.departement,
                    holdout=m.holdout,
                    active=True,
                    has_phone=f.phone_ok,
                    has_compte_ameli=f.compte_ameli,
                    has_email=f.email_ok,
                    has_postal_address=f.address_ok,
                    opposed=f.opposed,
                    enrolled_on=enrolled.get(key),
                    deceased=f.deceased,
                    actions=actions.get(m.id or 0, ()),
                    priority=m.priority,
                ),
            )
        )
    return out


def _deferrals_on_record(session: Session, member_ids: list[int]) -> set[tuple[Any, ...]]:
    return {
        (e.member_id, e.detail.get("step"), e.detail.get("reason"), e.detail.get("until"))
        for e in session.exec(
            select(MemberEvent).where(
                col(MemberEvent.member_id).in_(member_ids), MemberEvent.kind == DEFERRED
            )
        )
    }


def _take_batch(
    session: Session, campaign_id: str, lo: int, hi: int, only: Sequence[int] | None
) -> None:
    """Hold the batch before reading it: a second tick of the same members waits, then plans
    on what the first one wrote (instead of both planning on the same old state)."""
    if session.get_bind().dialect.name == "postgresql":
        # A launch day grows `action` by millions of rows while the tick runs: a plan the driver
        # prepared while it was small scanned it whole for every member (measured: 27 s a
        # batch instead of 0.2 s). The batch's reads are planned with the sizes of the moment.
        plan_each_statement(session)
        held = select(Member.id).where(
            Member.campaign_id == campaign_id, col(Member.id) >= lo, col(Member.id) <= hi
        )
        if only is not None:
            held = held.where(among(session, col(Member.id), only))
        # One lock order for every runner: no deadlock.
        session.exec(held.order_by(col(Member.id)).with_for_update()).all()
    else:
        # SQLite locks the whole database for a writer: any write takes it for the batch.
        session.execute(
            update(Campaign).where(col(Campaign.id) == campaign_id).values(name=Campaign.name)
        )


def _action_rows(
    definition: CampaignDefinition,
    bm: BatchMember,
    decision: Plan,
    today: date,
    now: datetime,
    pressure: Pressure,
    version: int | None = None,
) -> tuple[list[ActionRow], list[tuple[NewAction, Decision]]]:
    """The rows a member's plan writes (queued, or skipped with the policy's reason), and the
    actions the policy puts off for now (contact pressure)."""
    m, p = bm.member, bm.person
    rows: list[ActionRow] = []
    deferred: list[tuple[NewAction, Decision]] = []

    def row(
        step: str,
        channel: str,
        attempt: int,
        due_on: date,
        state: str,
        reason: str | None,
        due_at: datetime | None = None,
    ) -> ActionRow:
        return ActionRow(
            campaign_id=definition.id,
            member_id=m.id or 0,
            person_id=p.id or 0,
            priority=m.priority,
            anchor_date=m.anchor_date,
            created_at=now,
            updated_at=now,
            key=action_key(definition.id, p.id or 0, step, attempt),
            step=step,
            channel=channel,
            attempt=attempt,
            due_on=due_on,
            due_at=due_at,
            state=state,
            reason=reason,
            definition_version=version,
        )

    for a in decision.new_actions:
        verdict = policy_verdict(a, bm.facts, definition, today, pressure)
        if verdict.temporary:
            # Not now (contact pressure): nothing written, the tick plans it again later.
            deferred.append((a, verdict))
            continue
        allowed = verdict.allowed
        rows.append(
            row(
                a.step,
                a.channel,
                a.attempt,
                a.due_on,
                QUEUED if allowed else SKIPPED,
                a.reason if allowed else verdict.reason,
                a.due_at,
            )
        )
    for s in decision.skips:
        rows.append(row(s.step, s.channel, 1, today, SKIPPED, s.reason))
    return rows, deferred


def _record_deferrals(
    session: Session,
    states: list[BatchMember],
    deferrals: list[tuple[int, NewAction, Decision]],
    today: date,
) -> None:
    """One member event per deferral (step, reason, until), not one per tick."""
    seen = _deferrals_on_record(session, [bm.member.id or 0 for bm in states])
    for member_id, a, verdict in deferrals:
        until = verdict.until.isoformat() if verdict.until else None
        if (member_id, a.step, verdict.reason, until) in seen:
            continue
        seen.add((member_id, a.step, verdict.reason, until))
        session.add(
            MemberEvent(
                member_id=member_id,
                on=today,
                kind=DEFERRED,
                detail={
                    "step": a.step,
                    "channel": a.channel,
                    "attempt": a.attempt,
                    "reason": verdict.reason,
                    "until": until,
                    "text": f"{a.step} ({a.channel}) deferred"
                    + (f" until {until}" if until else "")
                    + f": {verdict.explanation}",
                },
            )
        )


def tick_batch(
    *,
    session: Session,
    definition: CampaignDefinition,
    lo: int,
    hi: int,
    today: date,
    now: datetime | None = None,
    fresh: bool = True,
    only: Sequence[int] | None = None,
) -> dict[str, int]:
    """Plan and record the day's decisions for active members with ids in [lo, hi] (and in
    `only`: a tick hands over the members its quiet rule left, not the quiet between them).

    `fresh=False` plans every member one by one (the reference the SQL pass is held to).
    """
    now = now or utcnow()
    pressure = pressure_from(get_settings())
    counts: dict[str, int] = defaultdict(int)
    new_rows: list[ActionRow] = []
    deferrals: list[tuple[int, NewAction, Decision]] = []
    _take_batch(session, definition.id, lo, hi, only)
    if definition.id in halted_campaigns(session=session):
        return {}  # paused or ended by its manager: nothing planned, nobody closed
    version = version_of(session=session, definition=definition)
    handled: frozenset[int] = frozenset()
    if fresh:
        # Members without history (a launch day), planned a class at a time in SQL (fresh.py).
        done = plan_fresh(
            session=session,
            definition=definition,
            lo=lo,
            hi=hi,
            today=today,
            now=now,
            pressure=pressure,
            version=version,
            only=only,
        )
        handled = done.handled
        counts.update(done.counts)
    if handled and all(i in handled for i in _active_ids(session, definition.id, lo, hi, only)):
        return dict(counts)
    # Members with nothing due today are counted, not loaded nor planned (see quiet.py).
    quiet = quiet_members(
        session=session, definition=definition, lo=lo, hi=hi, today=today, only=only
    )
    quiet -= handled
    if quiet:
        counts["members"] += len(quiet)
    states = _states(session, definition, lo, hi, today, pressure, skip=quiet | handled, only=only)
    for bm in states:
        decision = plan(bm.state, today, definition, add_working_days)
        counts["members"] += 1
        if decision.exit is not None:
            close_member(
                session=session,
                member=bm.member,
                status=decision.exit.status,
                reason=decision.exit.reason,
                today=today,
                source="cascade",
                now=now,
            )
            counts[f"left_{decision.exit.status}"] += 1
            continue
        rows, deferred = _action_rows(definition, bm, decision, today, now, pressure, version)
        new_rows += rows
        for a, verdict in deferred:
            deferrals.append((bm.member.id or 0, a, verdict))
            counts[f"deferred_{a.step}"] += 1
    if deferrals:
        _record_deferrals(session, states, deferrals, today)
    plan_each_statement(session, on=False)
    created = insert_actions(session, new_rows)
    counts["actions_written"] += created
    for r in new_rows:
        counts[f"{r.state}_{r.step}"] += 1
    return dict(counts)


def end_campaign(
    *,
    session: Session,
    definition: CampaignDefinition,
    today: date,
    now: datetime,
    force: bool = False,
) -> dict[str, int]:
    """Past the campaign's end: cancel every open action, let every member go. Set-based.

    Each member who leaves gets a `left` event (status completed, reason campaign_ended),
    as when the cascade closes one; nothing happens before the end (unless `force`: its
    manager ended it), nor twice.
    """
    if not force and not campaign_ended(definition, today):
        return {}
    return close_campaign(session=session, campaign_id=definition.id, today=today, now=now)


def close_campaign(
    *, session: Session, campaign_id: str, today: date, now: datetime
) -> dict[str, int]:
    """The end pass itself: open actions cancelled (campaign_ended), members completed."""
    reason = Reason.CAMPAIGN_ENDED
    cancelled = session.execute(
        update(Action)
        .where(
            col(Action.campaign_id) == campaign_id,
            col(Action.state).in_((QUEUED, FAILED_RETRYABLE)),
        )
        .values(state=CANCELLED, reason=reason, updated_at=now, claimed_by=None, lease_until=None)
        .returning(col(Action.id))
        .execution_options(synchronize_session=False)
    ).all()
    left = [
        mid
        for (mid,) in session.execute(
            update(Member)
            .where(
                col(Member.campaign_id) == campaign_id,
                col(Member.status).in_((ACTIVE, PENDING)),
            )
            .values(status=COMPLETED, status_reason=reason, status_on=today)
            .returning(col(Member.id))
            .execution_options(synchronize_session=False)
        ).all()
    ]
    if left:
        detail = {"status": COMPLETED, "reason": reason, "source": "campaign_end"}
        session.execute(
            insert(MemberEvent),
            [{"member_id": mid, "on": today, "kind": "left", "detail": detail} for mid in left],
        )
    return {"cancelled_campaign_ended": len(cancelled), "left_campaign_ended": len(left)}


def tick(
    *,
    engine: Engine,
    definition: CampaignDefinition,
    today: date,
    batch_size: int = 2000,
    within: tuple[int, int] | None = None,
    workers: int = 1,
) -> dict[str, int]:
    """The whole tick (or one partition's: the members `within` an id range), a transaction
    per batch, `workers` batches at a time on PostgreSQL.

    Past the campaign's end (or once its manager ended it), one pass cancels what is queued
    and lets every member go; while it is paused, nothing is planned (queued actions wait).
    A partition plans nothing then: the closing pass is the whole tick's, done once.
    """
    with session_scope(engine) as s:
        row = s.get(Campaign, definition.id)
        ended_by_manager = row is not None and row.ended_at is not None
        paused = row is not None and row.paused_at is not None
    over = ended_by_manager or campaign_ended(definition, today)
    if within is not None and over:
        return {"ended": 1, "batches": 0}
    if over:
        with session_scope(engine) as s:
            ended = end_campaign(
                session=s, definition=definition, today=today, now=utcnow(), force=True
            )
        return {**ended, "batches": 0}
    if paused:
        return {"paused": 1, "batches": 0}
    with session_scope(engine) as s:
        # A launch day writes millions of actions after a bulk admission: plan on real sizes.
        refresh_statistics(s, ("member", "action"))
        plan_each_statement(s)
        active, first, last = _active_range(s, definition.id, within)
        # One query finds who may have anything to do today: on a quiet day the batches
        # visit them alone, not the millions who wait (quiet.py).
        busy = (
            busy_members(session=s, definition=definition, lo=first, hi=last, today=today)
            if active
            else []
        )
    batches = batches_of(busy, batch_size, dense=len(busy) == active)

    def run(batch: Batch) -> dict[str, int]:
        with session_scope(engine) as s:
            return tick_batch(
                session=s,
                definition=definition,
                lo=batch[0],
                hi=batch[1],
                only=batch[2],
                today=today,
            )

    total: dict[str, int] = defaultdict(int)
    if active:
        total["actions_written"] = 0
    if active > len(busy):
        total["members"] = active - len(busy)  # quiet today: counted, not visited
    # The batches hold disjoint members: on PostgreSQL they run side by side, one connection
    # each (the database does most of a launch day's work). SQLite has one writer.
    if workers > 1 and len(batches) > 1 and engine.dialect.name == "postgresql":
        with ThreadPoolExecutor(workers, thread_name_prefix="tick") as pool:
            done = list(pool.map(run, batches))
    else:
        done = [run(b) for b in batches]
    for counts in done:
        for k, v in counts.items():
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
