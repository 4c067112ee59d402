"""The launch day's SQL pass against the member-by-member tick (the reference), both backends:
on random members, with and without history, the two write the same ledger."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from campaigns.cascade.fresh import plan_fresh
from campaigns.cascade.tick import tick, tick_batch
from campaigns.clock import utcnow
from campaigns.definition.model import DEFINITIONS_DIR, CampaignDefinition, parse_definition
from campaigns.ledger.models import Action, Enrolment, Member, MemberEvent, Opposition, Person
from campaigns.ledger.registry import register_campaign
from campaigns.policy.decision import Pressure

SOPHIA = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
GRIPPE = parse_definition(DEFINITIONS_DIR / "grippe_2026" / "campaign.yaml")
_serial = itertools.count()

MEMBER = st.fixed_dictionaries(
    {
        "anchor": st.integers(-120, 60),
        "holdout": st.sampled_from([False] * 4 + [True]),
        "deceased": st.sampled_from([False] * 8 + [True]),
        "opposed": st.sampled_from([None] * 8 + ["all", "phone", "mailbox", "letter"]),
        "enrolled": st.sampled_from([None] * 8 + [-3, 0, 4]),
        "phone": st.booleans(),
        "phone_invalid": st.sampled_from([False] * 4 + [True]),
        "ameli": st.booleans(),
        "email": st.booleans(),
        "address": st.sampled_from([True] * 4 + [False]),
        "address_invalid": st.sampled_from([False] * 4 + [True]),
        "priority": st.booleans(),
        # Contacts of the other campaign, days before today (the pressure windows count them).
        "contacts": st.lists(st.integers(0, 40), max_size=4),
        # An action of this campaign already written (then not a launch-day member).
        "started": st.sampled_from([False] * 4 + [True]),
    }
)


def _person(s: Session, m: dict[str, Any], today: date, now: datetime) -> Person:
    person = Person(
        ben_nir_psa=f"F{next(_serial):09d}",
        ben_rng_gem=1,
        nir="184127645108946",
        civilite="Mme",
        nom="DUPONT",
        prenom="Anne",
        address_lines=["1 RUE DE LA PAIX", "75002 PARIS"] if m["address"] else [],
        telephone="+33612345678" if m["phone"] else None,
        email="a@example.org" if m["email"] else None,
        compte_ameli=m["ameli"],
        phone_invalid=m["phone_invalid"],
        address_invalid=m["address_invalid"],
        echelon="75",
        departement="75",
        deceased_on=today - timedelta(days=2) if m["deceased"] else None,
        updated_at=now,
    )
    s.add(person)
    s.flush()
    return person


def _member(s: Session, d: CampaignDefinition, person: Person, anchor: date, m: dict[str, Any]):  # type: ignore[no-untyped-def]
    member = Member(
        campaign_id=d.id,
        person_id=person.id or 0,
        echelon="75",
        entered_on=anchor - timedelta(days=30),
        anchor_date=anchor,
        priority=m["priority"],
        holdout=m["holdout"],
        last_seen_on=anchor,
    )
    s.add(member)
    s.flush()
    return member


def _action(
    s: Session, member: Member, step: str, channel: str, state: str, on: date, now: datetime
) -> None:
    s.add(
        Action(
            key=f"{member.campaign_id}:{member.person_id}:{step}:1",
            campaign_id=member.campaign_id,
            member_id=member.id or 0,
            person_id=member.person_id,
            step=step,
            channel=channel,
            attempt=1,
            due_on=on,
            done_on=on if state != "queued" else None,
            state=state,
            created_at=now,
            updated_at=now,
        )
    )


def _add(
    s: Session,
    d: CampaignDefinition,
    other: CampaignDefinition,
    m: dict[str, Any],
    today: date,
    now: datetime,
) -> int:
    person = _person(s, m, today, now)
    anchor = today if d.anchor.kind == "wave" else today + timedelta(days=m["anchor"])
    member = _member(s, d, person, anchor, m)
    key = {"ben_nir_psa": person.ben_nir_psa, "ben_rng_gem": 1}
    if m["opposed"]:
        s.add(Opposition(**key, canal=m["opposed"], opposed_on=today, source="t"))
    if m["enrolled"] is not None:
        on = today + timedelta(days=m["enrolled"])
        s.add(
            Enrolment(
                **key,
                campaign_id=d.id,
                programme="sophia",
                enrolled_on=on,
                channel="online",
                source="t",
            )
        )
    if m["contacts"]:
        elsewhere = _member(s, other, person, today, m)
        for n, ago in enumerate(m["contacts"]):
            _action(
                s, elsewhere, f"letter{n}", "letter", "delivered", today - timedelta(days=ago), now
            )
    if m["started"]:
        first = d.cascade[0]
        _action(s, member, first.id, first.channel, "queued", today, now)
    return member.id or 0


def _seeded(
    engine: Engine,
    d: CampaignDefinition,
    other: CampaignDefinition,
    members: list[dict[str, Any]],
    today: date,
) -> list[int]:
    """Both campaigns registered and the drawn members of `d` committed; their ids."""
    now = utcnow()
    with Session(engine) as s:
        for c in (SOPHIA, GRIPPE):
            register_campaign(session=s, definition=c, launched=True)
        ids = [_add(s, d, other, m, today, now) for m in members]
        s.commit()
    return ids


def _ledger(s: Session, ids: list[int]) -> dict[str, Any]:
    """What a tick wrote for these members, with ids replaced by the members' order."""
    pos = {mid: i for i, mid in enumerate(ids)}
    actions = sorted(
        (
            pos[a.member_id],
            a.key.split(":", 2)[2],
            a.step,
            a.channel,
            a.attempt,
            a.state,
            a.reason,
            a.due_on,
            a.due_at,
            a.priority,
            a.anchor_date,
            a.definition_version,
        )
        for a in s.exec(select(Action).where(col(Action.member_id).in_(ids)))
    )
    members = sorted(
        (pos[m.id or 0], m.status, m.status_reason)
        for m in s.exec(select(Member).where(col(Member.id).in_(ids)))
    )
    events = sorted(
        (pos[e.member_id], e.kind, str(sorted(e.detail.items())))
        for e in s.exec(select(MemberEvent).where(col(MemberEvent.member_id).in_(ids)))
    )
    return {"actions": actions, "members": members, "events": events}


def _tick(engine: Engine, d: CampaignDefinition, ids: list[int], today: date, fresh: bool):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        try:
            counts = tick_batch(
                session=s, definition=d, lo=min(ids), hi=max(ids), today=today, now=NOW, fresh=fresh
            )
            return counts, _ledger(s, ids)
        finally:
            s.rollback()


NOW = datetime(2026, 10, 14, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize("definition", [SOPHIA, GRIPPE], ids=lambda d: d.id)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(members=st.lists(MEMBER, min_size=1, max_size=8), shift=st.integers(-30, 30))
def test_the_sql_pass_writes_what_the_member_by_member_tick_writes(
    engine: Engine, definition: CampaignDefinition, members: list[dict[str, Any]], shift: int
) -> None:
    other = GRIPPE if definition is SOPHIA else SOPHIA
    today = (GRIPPE.dates.start if definition is GRIPPE else date(2026, 11, 10)) + timedelta(shift)
    ids = _seeded(engine, definition, other, members, today)
    ref_counts, reference = _tick(engine, definition, ids, today, fresh=False)
    counts, ledger = _tick(engine, definition, ids, today, fresh=True)
    assert ledger == reference
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in ref_counts.items() if v}


def test_the_launch_day_is_planned_in_sql(engine: Engine) -> None:
    """The pass does plan the members without history (not all left to the member path),
    and leaves to it those with a history, an opposition or a recent contact."""
    today = GRIPPE.dates.start
    now = utcnow()
    plain = {
        "anchor": 0,
        "holdout": False,
        "deceased": False,
        "opposed": None,
        "enrolled": None,
        "phone": True,
        "phone_invalid": False,
        "ameli": True,
        "email": True,
        "address": True,
        "address_invalid": False,
        "priority": False,
        "contacts": [],
        "started": False,
    }
    with Session(engine) as s:
        for d in (SOPHIA, GRIPPE):
            register_campaign(session=s, definition=d, launched=True)
        fresh = [_add(s, GRIPPE, SOPHIA, plain, today, now) for _ in range(3)]
        letter = _add(s, GRIPPE, SOPHIA, {**plain, "ameli": False}, today, now)
        opposed = _add(s, GRIPPE, SOPHIA, {**plain, "opposed": "phone"}, today, now)
        contacted = _add(s, GRIPPE, SOPHIA, {**plain, "contacts": [3]}, today, now)
        started = _add(s, GRIPPE, SOPHIA, {**plain, "started": True}, today, now)
        done = plan_fresh(
            session=s,
            definition=GRIPPE,
            lo=fresh[0],
            hi=started,
            today=today,
            now=NOW,
            pressure=Pressure(),
            version=None,
        )
        written = {
            (a.member_id, a.step): (a.state, a.reason)
            for a in s.exec(select(Action).where(col(Action.campaign_id) == GRIPPE.id))
            if a.member_id != started
        }
        s.rollback()
    assert done.handled == {*fresh, letter}
    assert written[(fresh[0], "mailbox")] == ("queued", "due")
    assert written[(fresh[0], "letter")] == ("skipped", "has_compte_ameli")
    assert written[(letter, "letter")] == ("queued", "due")
    assert written[(letter, "mailbox")] == ("skipped", "no_compte_ameli")
    assert not {opposed, contacted} & {m for m, _ in written}
    assert done.counts["actions_written"] == 8


def test_batches_side_by_side_write_what_one_pass_writes(engine: Engine) -> None:
    """`workers=2` (PostgreSQL: two connections) plans every member once, as one pass would."""
    today = GRIPPE.dates.start
    draw = [
        {
            "anchor": 0, "holdout": i % 9 == 0, "deceased": i % 11 == 0,
            "opposed": "letter" if i % 7 == 0 else None, "enrolled": None,
            "phone": i % 2 == 0, "phone_invalid": False, "ameli": i % 3 != 0,
            "email": i % 4 == 0, "address": i % 5 != 0, "address_invalid": False,
            "priority": i % 3 == 0, "contacts": [2] if i % 13 == 0 else [], "started": i % 17 == 0,
        }
        for i in range(40)
    ]  # fmt: skip
    ids = _seeded(engine, GRIPPE, SOPHIA, draw, today)
    _, reference = _tick(engine, GRIPPE, ids, today, fresh=False)
    counts = tick(engine=engine, definition=GRIPPE, today=today, batch_size=7, workers=2)
    with Session(engine) as s:
        ledger = _ledger(s, ids)
    # The four live holdouts are quiet: 36 members in six batches, each with its id list
    # (quiet members lie between theirs), counted without being visited.
    assert counts["batches"] == 6
    assert counts["members"] == 40
    # The ledger's own columns (not the stamps: this run's clock, not the reference's).
    assert ledger["actions"] == reference["actions"]
    assert ledger["members"] == reference["members"]
    assert [e[:2] for e in ledger["events"]] == [e[:2] for e in reference["events"]]
