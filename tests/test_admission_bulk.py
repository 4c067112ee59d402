"""Set-based admission (COPY on PostgreSQL, chunked multi-row inserts on SQLite): the same
members, holdout, events and contact details as the row-by-row admission, idempotent on re-run
(both backends)."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from campaigns.cascade.membership import admit_targets
from campaigns.clock import utcnow
from campaigns.definition.model import DEFINITIONS_DIR, parse_definition
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Member, MemberEvent, Person
from campaigns.ledger.registry import register_campaign
from tests.factories import population

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
ENTRY = date(2026, 4, 15)
N = 2500  # more than one staging chunk on SQLite (2,000 rows)


def _drawn(campaign_id: str, psa: str, rng: int, share: float) -> bool:
    """The holdout draw as specified (sha256 of campaign|psa|rng, first 8 bytes), written out
    again here so a change of the draw in the code fails this test."""
    digest = hashlib.sha256(f"{campaign_id}|{psa}|{rng}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _admit(engine: Engine, n: int = N, start: int = 0) -> dict[str, int]:
    targets, people = population(n, anchor=date(2026, 6, 1), start=start)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        return admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)


def test_bulk_admission_holds_out_the_same_people(engine: Engine) -> None:
    counts = _admit(engine)
    with session_scope(engine) as s:
        rows = s.exec(
            select(Person.ben_nir_psa, Person.ben_rng_gem, Member.holdout)
            .join(Member, col(Member.person_id) == col(Person.id))
            .where(Member.campaign_id == D.id)
        ).all()
    assert len(rows) == N == counts["admitted"]
    expected = {psa for psa, rng, _ in rows if _drawn(D.id, psa, rng, D.holdout.share)}
    assert {psa for psa, _, h in rows if h} == expected
    assert counts["holdout"] == len(expected) > 0


def test_bulk_admission_writes_what_the_row_path_wrote(engine: Engine) -> None:
    _admit(engine)
    with session_scope(engine) as s:
        m, p = s.exec(
            select(Member, Person)
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(Person.ben_nir_psa == "PSA000003")
        ).one()
        event = s.exec(select(MemberEvent).where(MemberEvent.member_id == m.id)).one()
    # Encrypted columns go through the column's own encryption, read back in clear.
    assert p.telephone == "+33612340003" and p.email == "p3@example.org"
    assert p.address_lines == ["M. Prenom3 NOM3", "3 RUE DES LILAS", "91000 EVRY-COURCOURONNES"]
    assert (p.phone_invalid, p.email_invalid, p.address_invalid) == (False, False, False)
    assert abs((utcnow() - p.updated_at).total_seconds()) < 600  # UTC, not a Paris wall time
    assert m.anchor_date == date(2026, 6, 1) and m.entered_on == ENTRY
    assert m.priority is True and set(m.gaps) == set(D.targeting.gaps)
    assert (event.kind, event.on) == ("entered", ENTRY)
    assert event.detail == {
        "anchor_date": "2026-06-01",
        "priority": True,
        "gaps": m.gaps,
        "holdout": m.holdout,
    }


def test_bulk_admission_is_idempotent_on_rerun(engine: Engine) -> None:
    _admit(engine)
    again = _admit(engine, n=N + 10)  # the same people plus ten newcomers
    assert (again["admitted"], again["already_member"]) == (10, N)
    with session_scope(engine) as s:
        members = s.exec(select(func.count()).select_from(Member)).one()
        people = s.exec(select(func.count()).select_from(Person)).one()
        entered = s.exec(
            select(func.count()).select_from(MemberEvent).where(MemberEvent.kind == "entered")
        ).one()
        seen = s.exec(select(func.count()).where(Member.last_seen_on == ENTRY)).one()
    assert members == people == entered == seen == N + 10


def test_statistics_refreshed_after_a_bulk_write(engine: Engine) -> None:
    """PostgreSQL learns the tables' sizes (never analyzed: reltuples -1); a name outside the
    ledger's list is refused (never SQL built from a caller's string); SQLite: nothing to do."""
    from sqlalchemy import text

    from campaigns.ledger.bulk import refresh_statistics

    size = text("SELECT reltuples FROM pg_class WHERE relname = 'member'")
    with Session(engine) as s:
        if engine.dialect.name == "postgresql":
            assert s.execute(size).scalar_one() == -1  # truncated by the fixture: not known
        with pytest.raises(ValueError, match="tables inconnues"):
            refresh_statistics(s, ("member; DROP TABLE person",))
        refresh_statistics(s, ("member", "action"))
        if engine.dialect.name == "postgresql":
            assert s.execute(size).scalar_one() >= 0
        s.commit()


def _admit_into(engine: Engine, definition: object, n: int, start: int) -> dict[str, int]:
    targets, people = population(n, anchor=date(2026, 6, 1), start=start)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=definition, launched=True)  # type: ignore[arg-type]
        return admit_targets(
            session=s,
            definition=definition,  # type: ignore[arg-type]
            targets=targets,
            people=people,
            today=ENTRY,
        )


def _members_by_key(engine: Engine, campaign_id: str) -> dict[str, tuple[str, str, bool, dict]]:
    """Each member's person key → (NIR and phone read back in clear, holdout, event detail)."""
    with session_scope(engine) as s:
        rows = s.exec(
            select(Person, Member, MemberEvent)
            .join(Member, col(Member.person_id) == col(Person.id))
            .join(MemberEvent, col(MemberEvent.member_id) == col(Member.id))
            .where(Member.campaign_id == campaign_id)
        ).all()
        return {p.ben_nir_psa: (p.nir, p.telephone or "", m.holdout, e.detail) for p, m, e in rows}


def test_known_and_new_people_keep_their_own_rows_across_chunks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 7 (PostgreSQL's pipelined COPY): a second campaign admitting 30 known and 30
    new people gives each member the person of its own key, with its own details and one
    `entered` event; a person is never created twice."""
    from campaigns.cascade import membership
    from tests.factories import valid_nir

    monkeypatch.setattr(membership, "_CHUNK", 7)
    other = D.model_copy(update={"id": "sophia-bis"})
    assert _admit_into(engine, D, 60, 0)["admitted"] == 60
    assert _admit_into(engine, other, 60, 30)["admitted"] == 60
    for campaign, first in ((D.id, 0), (other.id, 30)):
        members = _members_by_key(engine, campaign)
        assert len(members) == 60
        for i in range(first, first + 60):
            nir, phone, holdout, detail = members[f"PSA{i:06d}"]
            assert (nir, phone) == (valid_nir(i), f"+3361234{i:04d}")
            assert holdout == _drawn(campaign, f"PSA{i:06d}", 1, D.holdout.share)
            assert detail["holdout"] == holdout
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(Person)).one() == 90


def test_ids_written_by_copy_stay_behind_the_sequence(engine: Engine) -> None:
    """A row inserted the ordinary way after a bulk admission takes a fresh id (the COPY's
    ids were reserved from the sequence, not taken beside it)."""
    _admit(engine, n=50)
    with session_scope(engine) as s:
        highest = s.exec(select(func.max(Person.id))).one()
        campaign_members = s.exec(select(func.max(Member.id))).one()
        extra = Person(
            ben_nir_psa="PSA-EXTRA",
            ben_rng_gem=1,
            nir="184127645108946",
            civilite="Mme",
            nom="EXTRA",
            prenom="Une",
            address_lines=["1 RUE"],
            echelon="91",
            departement="91",
            updated_at=utcnow(),
        )
        s.add(extra)
        s.flush()
        assert extra.id is not None and extra.id > highest
        twin = Member(
            campaign_id=D.id,
            person_id=extra.id,
            echelon="91",
            entered_on=ENTRY,
            anchor_date=ENTRY,
            last_seen_on=ENTRY,
        )
        s.add(twin)
        s.flush()
        assert twin.id is not None and twin.id > campaign_members


def test_two_campaigns_admitting_the_same_people_at_once(engine: Engine) -> None:
    """Two admissions at the same time over overlapping people: both complete, each person
    is created once, each campaign has all its members."""
    from concurrent.futures import ThreadPoolExecutor

    other = D.model_copy(update={"id": "sophia-bis"})
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(_admit_into, engine, D, 400, 0)
        b = pool.submit(_admit_into, engine, other, 400, 200)
        assert (a.result()["admitted"], b.result()["admitted"]) == (400, 400)
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(Person)).one() == 600
        assert s.exec(select(func.count()).select_from(Member)).one() == 800
