"""Retention: identities go 3 years after the last offer, unless the person enrolled."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.clock import utcnow
from campaigns.db import session_scope
from campaigns.definition import DEFINITIONS_DIR, parse_definition
from campaigns.membership import admit_targets
from campaigns.models import SENT, Action, Enrolment, Member, Person
from campaigns.registry import register_campaign
from campaigns.retention import ANONYMOUS, apply_retention
from tests.factories import population

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
ANCHOR = date(2023, 6, 15)
ENTRY = ANCHOR - timedelta(days=80)


def test_retention_dry_run_then_apply(engine: Engine) -> None:
    targets, people = population(4, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
    with session_scope(engine) as s:
        members = list(s.exec(select(Member).order_by(col(Member.id))).all())
        now = utcnow()
        # Person 1: a letter on 2023-06-15 (last offer). Person 2: a letter in 2024.
        for m, on in ((members[1], ANCHOR), (members[2], date(2024, 1, 10))):
            s.add(
                Action(
                    key=f"k{m.id}",
                    campaign_id=D.id,
                    member_id=m.id or 0,
                    person_id=m.person_id,
                    step="letter",
                    channel="letter",
                    attempt=1,
                    due_on=on,
                    state=SENT,
                    done_on=on,
                    created_at=now,
                    updated_at=now,
                )
            )
        # Person 3 enrolled: kept whatever the dates.
        s.add(
            Enrolment(
                ben_nir_psa="PSA000003",
                ben_rng_gem=1,
                programme="sophia",
                enrolled_on=ANCHOR,
                channel="online",
                source="test",
            )
        )
    as_of = date(2026, 6, 16)  # 3 years and a day after person 1's letter
    with session_scope(engine) as s:
        dry = apply_retention(session=s, as_of=as_of, dry_run=True)
    # Person 0 only entered (2023-03-27): gone; person 1: gone; person 2: recent; 3: enrolled.
    assert (dry.anonymised, dry.kept_recent, dry.kept_enrolled) == (2, 1, 1)
    with session_scope(engine) as s:
        assert s.exec(select(Person).where(Person.nom == ANONYMOUS)).first() is None
        done = apply_retention(session=s, as_of=as_of, dry_run=False)
    assert done.anonymised == 2
    with session_scope(engine) as s:
        gone = list(s.exec(select(Person).where(Person.nom == ANONYMOUS)).all())
        assert len(gone) == 2
        for p in gone:
            assert p.nir == "" and p.telephone is None and p.email is None
            assert p.address_lines == [] and p.ben_nir_psa.startswith("anon-")
        # Statistics stay: members and actions are still there.
        assert len(s.exec(select(Member)).all()) == 4
        again = apply_retention(session=s, as_of=as_of, dry_run=False)
    assert again.anonymised == 0 and again.already_anonymous == 2
