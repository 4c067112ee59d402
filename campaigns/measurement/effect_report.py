"""Per échelon: which touch each goal reached is credited to, and the uplift over the holdout."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.definition.model import REACHED_OUTCOMES
from campaigns.ledger.models import SUCCESS_STATES, Action, Enrolment, Member, Person
from campaigns.measurement.effect import Touch, Uplift, attribute, uplift

ATTRIBUTION_CHANNELS = ("phone", "mailbox", "letter", "none")


@dataclass
class EffectRow:
    """Attribution and uplift of one échelon (or `total`)."""

    echelon: str
    credited: dict[str, int]
    uplift: Uplift


def _enrolled_members(
    session: Session, campaign_id: str, until: date | None, since: date | None = None
) -> list[tuple[int, str, bool, date]]:
    """Members with a goal row of this campaign on or after their entry."""
    stmt = (
        select(col(Member.id), col(Member.echelon), col(Member.holdout), col(Enrolment.enrolled_on))
        .join(Person, col(Person.id) == col(Member.person_id))
        .join(
            Enrolment,
            (col(Enrolment.ben_nir_psa) == col(Person.ben_nir_psa))
            & (col(Enrolment.ben_rng_gem) == col(Person.ben_rng_gem))
            & (col(Enrolment.campaign_id) == col(Member.campaign_id)),
        )
        .where(
            Member.campaign_id == campaign_id,
            col(Enrolment.enrolled_on) >= col(Member.entered_on),
        )
    )
    if until is not None:
        stmt = stmt.where(col(Enrolment.enrolled_on) <= until)
    if since is not None:
        stmt = stmt.where(col(Enrolment.enrolled_on) >= since)
    return [(int(i or 0), e, bool(h), d) for i, e, h, d in session.exec(stmt).all()]


def _touches(session: Session, member_ids: list[int]) -> dict[int, list[Touch]]:
    out: dict[int, list[Touch]] = defaultdict(list)
    for chunk in (member_ids[i : i + 1000] for i in range(0, len(member_ids), 1000)):
        rows = session.exec(
            select(
                col(Action.member_id), col(Action.channel), col(Action.done_on), col(Action.outcome)
            ).where(
                col(Action.member_id).in_(chunk),
                col(Action.state).in_(SUCCESS_STATES),
                col(Action.channel).in_(("phone", "mailbox", "letter")),
                col(Action.done_on).is_not(None),
            )
        ).all()
        for mid, channel, on, outcome in rows:
            if on is None:
                continue
            if channel == "phone" and outcome not in REACHED_OUTCOMES:
                continue  # an unanswered call is no touch
            out[mid].append(Touch(on=on, channel=channel, detail=outcome or ""))
    return out


def effect_report(
    *,
    session: Session,
    campaign_id: str,
    window_days: int,
    until: date | None = None,
    since: date | None = None,
    confidence: float = 0.95,
    goal: str = "l'objectif",
) -> list[EffectRow]:
    """Rows per échelon then a `total` row: credited goals by channel, and the uplift."""
    sizes: dict[tuple[str, bool], int] = defaultdict(int)
    for e, h, n in session.exec(
        select(Member.echelon, Member.holdout, func.count())
        .where(
            Member.campaign_id == campaign_id,
            *([col(Member.entered_on) <= until] if until is not None else []),
        )
        .group_by(col(Member.echelon), col(Member.holdout))
    ).all():
        sizes[(e, bool(h))] += int(n)
    enrolled = _enrolled_members(session, campaign_id, until, since)
    touches = _touches(session, [m for m, _, h, _ in enrolled if not h])
    credited: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(ATTRIBUTION_CHANNELS, 0)
    )
    wins: dict[tuple[str, bool], int] = defaultdict(int)
    for mid, e, holdout, on in enrolled:
        wins[(e, holdout)] += 1
        if holdout:
            continue
        t = attribute(on, touches.get(mid, []), window_days)
        credited[e][t.channel if t else "none"] += 1
        credited["total"][t.channel if t else "none"] += 1
    echelons = sorted({e for e, _ in sizes})
    rows = []
    for e in [*echelons, "total"]:
        pick = echelons if e == "total" else [e]
        u = uplift(
            contacted=sum(sizes[(x, False)] for x in pick),
            contacted_enrolled=sum(wins[(x, False)] for x in pick),
            holdout=sum(sizes[(x, True)] for x in pick),
            holdout_enrolled=sum(wins[(x, True)] for x in pick),
            confidence=confidence,
            goal=goal,
        )
        rows.append(EffectRow(echelon=e, credited=dict(credited[e]), uplift=u))
    return rows
