"""Pages name the campaign's own anchor and goal, from its `labels:` (no "échéance ALD" for all)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.membership import admit_targets
from campaigns.definition import catalog
from campaigns.definition.catalog import load_campaign
from campaigns.definition.model import DEFINITIONS_DIR
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Member
from campaigns.ledger.registry import register_campaign
from tests.factories import population
from tests.test_broken_draft import PW, _client, _login

LABELS = 'labels:\n  anchor: "date de la vague"\n  goal: "vaccination antigrippale"\n\n'


@pytest.fixture
def wave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of sophia under another id, with its own words for anchor and goal."""
    defs = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS_DIR / "sophia_ald8", defs / "vague")
    path = defs / "vague" / "campaign.yaml"
    text = path.read_text(encoding="utf-8").replace("id: sophia-ald8", "id: vague", 1)
    start, end = text.index("labels:\n"), text.index("presentation:\n")
    path.write_text(text[:start] + LABELS + text[end:], encoding="utf-8")
    monkeypatch.setattr(catalog, "DEFINITIONS_DIR", defs)
    return "vague"


def test_sophia_names_its_anchor_and_goal() -> None:
    labels = load_campaign("sophia-ald8").definition.labels
    assert (labels.anchor, labels.goal) == ("échéance de l'ALD", "adhésion à sophia")


def test_pages_use_the_campaign_words(wave: str, engine: Engine, tmp_path: Path) -> None:
    d = load_campaign(wave).definition
    targets, people = population(2, anchor=date(2026, 6, 15))
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d)
        day = date(2026, 3, 2)
        admit_targets(session=s, definition=d, targets=targets, people=people, today=day)
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
    with session_scope(engine) as s:
        mid = s.exec(select(Member.id)).first()
    c = _client(engine, tmp_path)
    _login(c, "mgr")
    person = c.get(f"/campaigns/{wave}/members/{mid}")
    assert person.status_code == 200, person.text[:300]
    assert "date de la vague" in person.text and "échéance ALD" not in person.text
    results = c.get(f"/campaigns/{wave}/results")
    assert results.status_code == 200, results.text[:300]
    assert "vaccination antigrippale" in results.text
    assert "adhésions et objectifs" not in results.text
    header = c.get(f"/campaigns/{wave}/results.csv").content.decode("utf-8-sig").splitlines()[0]
    assert "vaccination antigrippale" in header.split(";") and "adhésions" not in header
