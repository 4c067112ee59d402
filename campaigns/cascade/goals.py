"""Goals observed in the extract (a care act, a registry fact): who reached them, since when.

A care act counts from the member's first contact (the first delivered message or letter,
or the first call that reached them); a member of the holdout, never contacted, counts from
their entry, so the effect compares like with like. A registry fact counts from the entry.
What is observed is recorded as the campaign's goal row and closes the member (status
goal), the same path as an enrolment from the feed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from campaigns.cascade.enrolments import record_goal_rows
from campaigns.definition.goals import CareActGoal, RegistryFactGoal
from campaigns.definition.model import REACHED_OUTCOMES
from campaigns.definition.reasons import Reason
from campaigns.ledger.models import (
    ACTIVE,
    OBSERVED_CHANNEL,
    SUCCESS_STATES,
    Action,
    Member,
    Person,
)

SINCE_COLUMNS = ["ben_nir_psa", "ben_rng_gem", "since"]

# targeting.goals.observe_goal: (extract, goal, since frame) -> key + observed_on.
Observer = Callable[..., pd.DataFrame]
ObservedGoal = CareActGoal | RegistryFactGoal


@dataclass
class ObservationReport:
    """What one observation did."""

    members: int = 0
    observed: int = 0
    new: int = 0
    members_closed: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain counts."""
        return {
            "members": self.members,
            "observed": self.observed,
            "new": self.new,
            "members_closed": self.members_closed,
        }


def _frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    """Rows as a frame, one column at a time: pandas probes each SQLAlchemy row for named-tuple
    attributes, and every failed probe raises inside SQLAlchemy (a third of an observation)."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pd.DataFrame(dict(zip(columns, values, strict=True)), columns=columns)


def _first_contacts(session: Session, campaign_id: str) -> pd.DataFrame:
    """Each active member's first contact: a message delivered or a call that reached them."""
    touched = col(Action.state).in_(SUCCESS_STATES) & col(Action.done_on).is_not(None)
    reached = or_(col(Action.channel) != "phone", col(Action.outcome).in_(REACHED_OUTCOMES))
    rows = (
        session.connection()
        .execute(  # plain rows: millions on a wave, no ORM
            sa_select(col(Action.member_id), func.min(col(Action.done_on)))
            .join(Member, col(Member.id) == col(Action.member_id))
            .where(
                col(Member.campaign_id) == campaign_id,
                col(Member.status) == ACTIVE,
                touched,
                reached,
            )
            .group_by(col(Action.member_id))
        )
        .all()
    )
    return _frame(rows, ["id", "contact"])


def observation_since(*, session: Session, campaign_id: str, goal: ObservedGoal) -> pd.DataFrame:
    """The active members to observe and the day their goal starts counting.

    A care act counts from the first contact (the holdout's from the entry: they are never
    contacted); a member not contacted yet is not observed. A registry fact counts from the
    entry. Two column queries joined in pandas (a flu wave has millions of members; one SQL
    join on an aggregate got a nested-loop plan on freshly loaded tables).
    """
    rows = (
        session.connection()
        .execute(  # plain rows: millions on a wave, no ORM
            sa_select(
                col(Member.id),
                col(Person.ben_nir_psa),
                col(Person.ben_rng_gem),
                col(Member.entered_on),
                col(Member.holdout),
            )
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(col(Member.campaign_id) == campaign_id, col(Member.status) == ACTIVE)
        )
        .all()
    )
    members = _frame(rows, ["id", *SINCE_COLUMNS, "holdout"])
    if goal.kind == "care_act":
        members = members.merge(_first_contacts(session, campaign_id), on="id", how="left")
        holdout = members["holdout"].astype(bool)
        members["since"] = members["since"].where(holdout, members["contact"])
        members = members.loc[members["since"].notna().to_numpy()]
    frame = members[SINCE_COLUMNS].reset_index(drop=True)
    frame["ben_rng_gem"] = frame["ben_rng_gem"].astype("int64")
    frame["since"] = pd.to_datetime(frame["since"]).dt.date
    return frame


def _observed_rows(
    observed: pd.DataFrame, since: pd.DataFrame, today: date
) -> list[dict[str, Any]]:
    """The observer's answer, kept to what it was asked: on or after `since`, not after today."""
    if observed.empty or since.empty:
        return []
    merged = observed.merge(since, on=["ben_nir_psa", "ben_rng_gem"], how="inner")
    on = pd.to_datetime(merged["observed_on"]).dt.date
    kept = merged.loc[((merged["since"] <= on) & (on <= today)).to_numpy()]
    return [
        {
            "ben_nir_psa": str(psa),
            "ben_rng_gem": int(rng),
            "enrolled_on": day,
            "channel": OBSERVED_CHANNEL,
        }
        for psa, rng, day in zip(
            kept["ben_nir_psa"], kept["ben_rng_gem"], on[kept.index], strict=True
        )
    ]


def observe_goals(
    *,
    session: Session,
    campaign_id: str,
    goal: ObservedGoal,
    extract: Path,
    observe: Observer,
    today: date,
    now: datetime,
) -> ObservationReport:
    """Ask the extract which active members reached the goal; record and close them."""
    since = observation_since(session=session, campaign_id=campaign_id, goal=goal)
    report = ObservationReport(members=len(since))
    if since.empty:
        return report
    observed = observe(extract=extract, goal=goal, since=since)
    rows = _observed_rows(observed, since, today)
    report.observed = len(rows)
    if rows:
        report.new, report.members_closed = record_goal_rows(
            session=session,
            campaign_id=campaign_id,
            programme=goal.programme,
            rows=rows,
            source=f"extract:{goal.kind}",
            reason=Reason.GOAL_OBSERVED,
            closed_by="goal_observation",
            now=now,
        )
    return report
