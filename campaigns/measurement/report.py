"""Goals reached against objectives (a count, or a rate of the eligible), per échelon."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, distinct, func, or_
from sqlmodel import Session, col, select

from campaigns.definition.goals import Objectives
from campaigns.definition.model import REACHED_OUTCOMES
from campaigns.ledger.models import SUCCESS_STATES, Action, Enrolment, Member, Person
from campaigns.ledger.registry import current_objectives
from targeting.schema import ECHELONS


@dataclass
class EchelonRow:
    """One line of the objectives table."""

    echelon: str
    name: str
    eligible: int = 0
    priority: int = 0
    holdout: int = 0
    contacted: int = 0
    called: int = 0
    reached: int = 0
    mailbox: int = 0
    letters: int = 0
    enrolled: int = 0
    objective: int = 0
    objective_rate: float | None = None  # a rate objective: the share of the eligible

    @property
    def attainment(self) -> float | None:
        """Enrolled over objective, in percent."""
        return 100.0 * self.enrolled / self.objective if self.objective else None

    def as_dict(self) -> dict[str, Any]:
        """Plain values, attainment included."""
        return {**asdict(self), "attainment": self.attainment}


def _count_by_echelon(session: Session, stmt: Any) -> dict[str, int]:
    return {e: int(n) for e, n in session.exec(stmt).all()}


def _within(day: Any, since: date | None, until: date | None) -> list[Any]:
    """The conditions keeping a day column inside an inclusive period (open ends ignored)."""
    return [c for c in (since and day >= since, until and day <= until) if c is not None]


def echelon_report(
    *,
    session: Session,
    campaign_id: str,
    objectives: Objectives | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[EchelonRow]:
    """Per échelon: members, priority, holdout, contacts by channel, goals reached, objective.

    Every count follows `measurement.counts.DEFINITIONS`; `since`/`until` (inclusive) bound the
    day an action was played, a goal reached, and (`until` only) the day a member entered.
    `enrolled` counts the members with a goal row of this campaign dated on or after their
    entry. The objective is the latest one set in the ledger; failing that, for a rate
    objective, the rate times the échelon's eligible (rounded up).
    """
    m = Member
    by = col(m.echelon)
    base = select(by, func.count()).where(m.campaign_id == campaign_id).group_by(by)
    if until is not None:
        base = base.where(col(m.entered_on) <= until)
    played = _within(col(Action.done_on), since, until)
    rows: dict[str, EchelonRow] = {}

    def row(e: str) -> EchelonRow:
        if e not in rows:
            rows[e] = EchelonRow(echelon=e, name=ECHELONS.get(e, e))
        return rows[e]

    def members_with(*conds: Any) -> Any:
        return (
            select(by, func.count(distinct(col(m.id))))
            .join(Action, col(Action.member_id) == col(m.id))
            .where(m.campaign_id == campaign_id, *played, *conds)
            .group_by(by)
        )

    done = col(Action.state).in_(SUCCESS_STATES)
    is_reached = and_(col(Action.channel) == "phone", col(Action.outcome).in_(REACHED_OUTCOMES))
    reached = members_with(is_reached)
    # Contacted: a message or letter played, or a call that reached the person; an unanswered
    # call is an attempt, not a contact (the effect's attribution counts the same touches).
    contacted = members_with(done, or_(col(Action.channel) != "phone", is_reached))
    goal_day = _within(col(Enrolment.enrolled_on), since, until)
    enrolled = (
        select(by, func.count(distinct(col(m.id))))
        .join(Person, col(Person.id) == col(m.person_id))
        .join(
            Enrolment,
            (col(Enrolment.ben_nir_psa) == col(Person.ben_nir_psa))
            & (col(Enrolment.ben_rng_gem) == col(Person.ben_rng_gem))
            & (col(Enrolment.campaign_id) == col(m.campaign_id)),
        )
        .where(
            m.campaign_id == campaign_id,
            col(Enrolment.enrolled_on) >= col(m.entered_on),
            *goal_day,
        )
        .group_by(by)
    )
    # Each column of the report, and the count per échelon that fills it.
    columns = {
        "eligible": base,
        "priority": base.where(col(m.priority).is_(True)),
        "holdout": base.where(col(m.holdout).is_(True)),
        "contacted": contacted,
        "called": members_with(Action.channel == "phone", done),
        "reached": reached,
        "mailbox": members_with(Action.channel == "mailbox", done),
        "letters": members_with(Action.channel == "letter", done),
        "enrolled": enrolled,
    }
    for column, stmt in columns.items():
        for e, n in _count_by_echelon(session, stmt).items():
            setattr(row(e), column, n)
    set_in_ledger = current_objectives(session=session, campaign_id=campaign_id)
    if objectives is not None and objectives.kind == "rate":
        for e in [*rows, *(e for e in objectives.names() if e not in rows)]:
            r = row(e)
            r.objective_rate = objectives.rate(e)
            r.objective = objectives.target(e, r.eligible) or 0
    for e, target in set_in_ledger.items():
        row(e).objective = target
    return [rows[e] for e in sorted(rows)]


def total_row(rows: list[EchelonRow]) -> EchelonRow:
    """The sum of every échelon."""
    t = EchelonRow(echelon="total", name="Total")
    for r in rows:
        for f in (
            "eligible",
            "priority",
            "holdout",
            "contacted",
            "called",
            "reached",
            "mailbox",
            "letters",
            "enrolled",
            "objective",
        ):
            setattr(t, f, getattr(t, f) + getattr(r, f))
    if any(r.objective_rate is not None for r in rows) and t.eligible:
        t.objective_rate = t.objective / t.eligible
    return t
