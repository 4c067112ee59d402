"""Explanations stored at admission: one set-based pass gives, for every admitted person, what
`explain_person` (the reference, one person at a time) gives, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

import targeting.explain
from campaigns.app.people import member_explanation
from campaigns.app.stages import register, targeting_stage
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import session_scope
from campaigns.ledger.explanations import as_json
from campaigns.ledger.models import Member, MemberExplanation, Person
from targeting.explain import explain_people, explain_person
from tests.extracts import D
from tests.test_targeting import ELIGIBILITY, GAPS, build

CAMPAIGN = load_campaign("sophia-ald8")
RULE = CAMPAIGN.definition.targeting


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build().write(tmp_path_factory.mktemp("x"), "parquet")


@pytest.mark.parametrize("literal_keys", [5000, 0], ids=["keys-as-literals", "keys-joined"])
def test_the_batch_gives_what_the_per_person_explanation_gives(
    extract: Path, literal_keys: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(targeting.explain, "_LITERAL_KEYS", literal_keys)
    # Eligible and not, care gaps found and not, several reasons, and someone not in the extract.
    keys = [(psa, 1) for psa in [*ELIGIBILITY, *GAPS]] + [("NOBODY", 1), ("G_ALL", 2)]
    batch = explain_people(rule=RULE, extract=extract, as_of=D, keys=keys)
    one = [
        explain_person(rule=RULE, extract=extract, as_of=D, ben_nir_psa=p, ben_rng_gem=r)
        for p, r in keys
    ]
    assert [x.as_dict() for x in batch] == [x.as_dict() for x in one]
    # Not vacuous: evidence rows, eligible and ineligible people, someone unknown.
    assert sum(bool(c.rows) for x in batch for c in x.criteria) > 10
    assert {x.eligible for x in batch} == {True, False}
    assert [x.found for x in batch][-2:] == [False, False]


def _refuse(**_: Any) -> Any:
    raise AssertionError("the targeting engine must not run on a person page")


def test_the_targeting_stage_stores_every_admitted_persons_explanation(
    engine: Engine, extract: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(engine=engine, campaign=CAMPAIGN)
    counts = targeting_stage(engine=engine, campaign=CAMPAIGN, extract=extract, day=D)
    with session_scope(engine) as s:
        members = s.exec(select(Member, Person).join(Person)).all()
        stored = {e.member_id: e for e in s.exec(select(MemberExplanation))}
    assert members and len(stored) == len(members), counts
    for m, p in members[:5]:
        want = explain_person(
            rule=RULE, extract=extract, as_of=D, ben_nir_psa=p.ben_nir_psa, ben_rng_gem=1
        )
        assert stored[m.id or 0].body == as_json(want) and stored[m.id or 0].as_of == D
    # The person page reads it: the engine never runs again.
    monkeypatch.setattr(targeting.explain, "explain_person", _refuse)
    with session_scope(engine) as s:
        x = member_explanation(session=s, member_id=members[0][0].id or 0, extract=extract)
        assert x["eligible"] and x["criteria"]
    # A second run of the same day stores nothing twice.
    targeting_stage(engine=engine, campaign=CAMPAIGN, extract=extract, day=D)
    with session_scope(engine) as s:
        assert len(s.exec(select(MemberExplanation)).all()) == len(members)
