"""The tick's set-based quiet-day rule against the pure planner (the reference), both backends:
for random member states, every member the SQL finds quiet gets an empty plan."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from campaigns.cascade.planner import plan
from campaigns.cascade.quiet import busy_members, quiet_members
from campaigns.cascade.tick import _states
from campaigns.clock import utcnow
from campaigns.definition.model import DEFINITIONS_DIR, parse_definition
from campaigns.ledger.models import Action, Enrolment, Member, Opposition, Person
from campaigns.ledger.registry import register_campaign
from campaigns.ledger.vocabulary import ActionState
from campaigns.policy.calendar import add_working_days
from campaigns.policy.decision import pressure_from
from campaigns.settings import get_settings

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
TODAY = date(2026, 11, 10)
STEPS = {s.id: s.channel for s in D.cascade} | {"mailbox_notice": "email"}
OUTCOMES = [None, "no_answer", "callback", "enrolled_on_call", "refused", "busy"]
_serial = itertools.count()

# Per step: no attempt, or attempts numbered 1..n (the last one's state is what matters most).
ATTEMPTS = st.lists(
    st.tuples(
        st.sampled_from(list(ActionState)),
        st.sampled_from(OUTCOMES),
        st.integers(-20, 5),  # due_on / done_on, days from today
    ),
    max_size=2,
)
ACTIONS = st.fixed_dictionaries({step: ATTEMPTS for step in sorted(STEPS)}).map(
    lambda by_step: [
        (step, n, state, outcome, day)
        for step, attempts in by_step.items()
        for n, (state, outcome, day) in enumerate(attempts, start=1)
    ]
)
MEMBER = st.fixed_dictionaries(
    {
        "anchor": st.integers(-120, 60),
        "holdout": st.booleans(),
        "deceased": st.sampled_from([False] * 6 + [True]),
        "opposed": st.sampled_from([None] * 6 + ["all", "phone", "mailbox", "email"]),
        "enrolled": st.sampled_from([None] * 6 + [-3, 0, 4]),
        "phone": st.booleans(),
        "ameli": st.booleans(),
        "email": st.booleans(),
        "priority": st.booleans(),
        "actions": ACTIONS,
    }
)


def _add_member(s: Session, m: dict[str, Any], now: datetime) -> int:
    psa = f"Q{next(_serial):09d}"
    person = Person(
        ben_nir_psa=psa,
        ben_rng_gem=1,
        nir="184127645108946",
        civilite="Mme",
        nom="DUPONT",
        prenom="Anne",
        address_lines=["1 RUE DE LA PAIX", "75002 PARIS"],
        telephone="+33612345678" if m["phone"] else None,
        email="a@example.org" if m["email"] else None,
        compte_ameli=m["ameli"],
        echelon="75",
        departement="75",
        deceased_on=TODAY - timedelta(days=2) if m["deceased"] else None,
        updated_at=now,
    )
    s.add(person)
    s.flush()
    anchor = TODAY + timedelta(days=m["anchor"])
    member = Member(
        campaign_id=D.id,
        person_id=person.id or 0,
        echelon="75",
        entered_on=min(anchor, TODAY) - timedelta(days=30),
        anchor_date=anchor,
        priority=m["priority"],
        holdout=m["holdout"],
        last_seen_on=TODAY,
    )
    s.add(member)
    s.flush()
    if m["opposed"]:
        s.add(
            Opposition(
                ben_nir_psa=psa, ben_rng_gem=1, canal=m["opposed"], opposed_on=TODAY, source="t"
            )
        )
    if m["enrolled"] is not None:
        s.add(
            Enrolment(
                campaign_id=D.id,
                ben_nir_psa=psa,
                ben_rng_gem=1,
                programme="sophia",
                enrolled_on=TODAY + timedelta(days=m["enrolled"]),
                channel="online",
                source="t",
            )
        )
    for step, attempt, state, outcome, day in m["actions"]:
        s.add(
            Action(
                key=f"{psa}:{step}:{attempt}",
                campaign_id=D.id,
                member_id=member.id or 0,
                person_id=person.id or 0,
                step=step,
                channel=STEPS[step],
                attempt=attempt,
                due_on=TODAY + timedelta(days=day),
                done_on=TODAY + timedelta(days=day) if state not in ("queued", "sending") else None,
                state=state,
                outcome=outcome if STEPS[step] == "phone" else None,
                created_at=now,
                updated_at=now,
            )
        )
    return member.id or 0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=st.lists(MEMBER, min_size=1, max_size=6), shift=st.integers(-60, 60))
def test_quiet_members_get_an_empty_plan_from_the_planner(
    engine: Engine, members: list[dict[str, Any]], shift: int
) -> None:
    today = TODAY + timedelta(days=shift)
    now = utcnow()
    with Session(engine) as s:
        try:
            register_campaign(session=s, definition=D, launched=True)
            ids = [_add_member(s, m, now) for m in members]
            lo, hi = min(ids), max(ids)
            quiet = quiet_members(session=s, definition=D, lo=lo, hi=hi, today=today)
            # What a tick batches is exactly the rest, and a batch's id list narrows the rule.
            busy = busy_members(session=s, definition=D, lo=lo, hi=hi, today=today)
            assert sorted(busy) == busy and set(busy) == set(ids) - quiet
            some = ids[::2]
            assert quiet_members(
                session=s, definition=D, lo=lo, hi=hi, today=today, only=some
            ) == quiet & set(some)
            pressure = pressure_from(get_settings())
            for bm in _states(s, D, lo, hi, today, pressure):
                if bm.member.id in quiet:
                    decided = plan(bm.state, today, D, add_working_days)
                    assert decided.empty, (bm.state, decided)
        finally:
            s.rollback()


def test_waiting_members_are_quiet_and_due_ones_are_not(engine: Engine) -> None:
    """The rule does find the quiet: a window not open yet, a step queued; not a step due."""
    base = {
        "holdout": False,
        "deceased": False,
        "opposed": None,
        "enrolled": None,
        "phone": True,
        "ameli": True,
        "email": True,
        "priority": True,
    }
    now = utcnow()
    with Session(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        later = _add_member(s, {**base, "anchor": 120, "actions": []}, now)
        due = _add_member(s, {**base, "anchor": 0, "actions": []}, now)
        queued = _add_member(
            s,
            {**base, "anchor": 0, "actions": [(st_id, 1, "queued", None, 0) for st_id in STEPS]},
            now,
        )
        held = _add_member(s, {**base, "anchor": 0, "holdout": True, "actions": []}, now)
        # A call that ended unanswered, everything else queued: the planner retries it.
        called = _add_member(
            s,
            {
                **base,
                "anchor": 0,
                "actions": [
                    (st_id, 1, "done" if st_id == "call" else "queued", "no_answer", -1)
                    for st_id in STEPS
                ],
            },
            now,
        )
        quiet = quiet_members(session=s, definition=D, lo=later, hi=called, today=TODAY)
        s.rollback()
    assert quiet == {later, queued, held}
    assert due not in quiet and called not in quiet
