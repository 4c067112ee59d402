"""An action refers to an existing member, and carries that member's campaign and person
(one composite key on PostgreSQL, the same check by trigger on SQLite)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from campaigns.clock import utcnow
from campaigns.definition.model import DEFINITIONS_DIR, parse_definition
from campaigns.ledger.models import Action, Member, Person
from campaigns.ledger.registry import register_campaign

SOPHIA = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
GRIPPE = parse_definition(DEFINITIONS_DIR / "grippe_2026" / "campaign.yaml")
DAY = date(2026, 10, 14)


def _person(s: Session, psa: str) -> int:
    p = Person(
        ben_nir_psa=psa, ben_rng_gem=1, nir="184127645108946", civilite="Mme", nom="DUPONT",
        prenom="Anne", address_lines=[], echelon="75", departement="75", updated_at=utcnow(),
    )  # fmt: skip
    s.add(p)
    s.flush()
    return p.id or 0


def _action(member: int, campaign: str, person: int, key: str) -> Action:
    now = utcnow()
    return Action(
        key=key, campaign_id=campaign, member_id=member, person_id=person, step="call",
        channel="phone", attempt=1, due_on=DAY, created_at=now, updated_at=now,
    )  # fmt: skip


@pytest.mark.parametrize("wrong", ["member", "campaign", "person"])
def test_an_action_must_carry_its_members_campaign_and_person(engine: Engine, wrong: str) -> None:
    with Session(engine) as s:
        for d in (SOPHIA, GRIPPE):
            register_campaign(session=s, definition=d, launched=True)
        one, two = _person(s, "R000000001"), _person(s, "R000000002")
        m = Member(
            campaign_id=SOPHIA.id, person_id=one, echelon="75", entered_on=DAY,
            anchor_date=DAY, last_seen_on=DAY,
        )  # fmt: skip
        s.add(m)
        s.flush()
        s.add(_action(m.id or 0, SOPHIA.id, one, "own"))  # its own member's: accepted
        s.commit()
        bad = {
            "member": ((m.id or 0) + 1, SOPHIA.id, one),
            "campaign": (m.id or 0, GRIPPE.id, one),
            "person": (m.id or 0, SOPHIA.id, two),
        }[wrong]
    with Session(engine) as s, pytest.raises(IntegrityError):
        s.add(_action(*bad, key="bad"))
        s.flush()
    with Session(engine) as s, pytest.raises(IntegrityError):
        member, campaign, person = bad
        s.execute(
            update(Action)
            .where(col(Action.key) == "own")
            .values(member_id=member, campaign_id=campaign, person_id=person)
        )
        s.flush()
