"""Retention: identities go 3 years after the last offer, unless the person enrolled."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Member, Person
from campaigns.ledger.retention import ANONYMOUS, apply_retention
from tests.test_retention_flow import ledger


def test_retention_dry_run_then_apply(engine: Engine) -> None:
    ledger(engine)
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
