"""Attribution and uplift on a small hand-built campaign (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import date, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.cascade.membership import admit_targets
from campaigns.clock import utcnow
from campaigns.definition.model import DEFINITIONS_DIR, parse_definition
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import DONE, SENT, Action, Enrolment, Member
from campaigns.ledger.registry import register_campaign
from campaigns.measurement.effect_report import effect_report
from tests.factories import population

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
ANCHOR = date(2026, 6, 15)
ENTRY = ANCHOR - timedelta(days=80)
ENROL = ANCHOR + timedelta(days=5)


def _touch(s: object, m: Member, channel: str, on: date, outcome: str | None = None) -> None:
    now = utcnow()
    s.add(  # type: ignore[attr-defined]
        Action(
            key=f"{D.id}:{m.person_id}:{channel}:1",
            campaign_id=D.id,
            member_id=m.id or 0,
            person_id=m.person_id,
            step=channel,
            channel=channel,
            attempt=1,
            due_on=on,
            state=DONE if channel == "phone" else SENT,
            outcome=outcome,
            done_on=on,
            created_at=now,
            updated_at=now,
        )
    )


def test_attribution_and_uplift_as_computed_by_hand(engine: Engine) -> None:
    targets, people = population(100, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
    with session_scope(engine) as s:
        members = list(s.exec(select(Member).order_by(col(Member.id))).all())
        holdout_ids = [m.id for m in members[:40]]
        s.execute(update(Member).values(holdout=False))
        s.execute(update(Member).where(col(Member.id).in_(holdout_ids)).values(holdout=True))
    with session_scope(engine) as s:
        members = list(s.exec(select(Member).order_by(col(Member.id))).all())
        holdout, contacted = members[:40], members[40:]
        # Holdout: 6 of 40 enrol (15 %). Contacted: 30 of 60 enrol (50 %).
        enrolled = holdout[:6] + contacted[:30]
        # Of the 30 contacted who enrolled: 10 after a reached call, 8 after a mailbox
        # message (later than a reached call), 5 after a letter, 4 with an unanswered call only,
        # 3 whose only touch was 70 days before (outside the 60-day window).
        for m in contacted[:10]:
            _touch(s, m, "phone", ENROL - timedelta(days=20), "will_enrol_online")
        for m in contacted[10:18]:
            _touch(s, m, "phone", ENROL - timedelta(days=30), "refused")
            _touch(s, m, "mailbox", ENROL - timedelta(days=10))
        for m in contacted[18:23]:
            _touch(s, m, "letter", ENROL)
        for m in contacted[23:27]:
            _touch(s, m, "phone", ENROL - timedelta(days=3), "no_answer")
        for m in contacted[27:30]:
            _touch(s, m, "letter", ENROL - timedelta(days=70))
        # Touches after the enrolment never count.
        _touch(s, contacted[0], "letter", ENROL + timedelta(days=1))
        for m in enrolled:
            p = people.iloc[members.index(m)]
            s.add(
                Enrolment(
                    campaign_id=D.id,
                    ben_nir_psa=p["ben_nir_psa"],
                    ben_rng_gem=1,
                    programme="sophia",
                    enrolled_on=ENROL,
                    channel="online",
                    source="test",
                )
            )
    with session_scope(engine) as s:
        rows = effect_report(session=s, campaign_id=D.id, window_days=60)
    by = {r.echelon: r for r in rows}
    assert set(by) == {"91", "total"}
    assert by["total"].credited == {"phone": 10, "mailbox": 8, "letter": 5, "none": 7}
    u = by["total"].uplift
    assert (u.contacted, u.contacted_enrolled, u.holdout, u.holdout_enrolled) == (60, 30, 40, 6)
    se = math.sqrt(0.5 * 0.5 / 60 + 0.15 * 0.85 / 40)
    assert u.difference is not None and math.isclose(u.difference, 0.35)
    assert u.low is not None and math.isclose(u.low, 0.35 - 1.959964 * se, abs_tol=1e-5)
    assert u.verdict == "positive"
