"""A broken draft beside sophia is reported for itself and never breaks another campaign."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from campaigns.cascade.membership import admit_targets
from campaigns.definition import catalog
from campaigns.definition.catalog import list_campaigns, load_campaign
from campaigns.definition.model import DEFINITIONS_DIR, DefinitionError
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from console.cli import app
from console.web.app import create_app
from tests.extracts import Extract
from tests.factories import population

SOPHIA = DEFINITIONS_DIR / "sophia_ald8"
PW = "correct horse battery"


def _draft_from_sophia(root: Path, name: str, new_id: str) -> Path:
    dst = root / name
    shutil.copytree(SOPHIA, dst)
    path = dst / "campaign.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("id: sophia-ald8", f"id: {new_id}", 1),
        encoding="utf-8",
    )
    return dst


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sophia and three broken drafts in the definitions root every caller reads."""
    defs = tmp_path / "definitions"
    defs.mkdir()
    shutil.copytree(SOPHIA, defs / "sophia_ald8")
    # Sorted before sophia, so a catalogue that parses every folder stops on them first.
    short = defs / "a_court"
    short.mkdir()
    (short / "campaign.yaml").write_text('id: brouillon-court\nname: "brouillon"\n')
    bad_template = _draft_from_sophia(defs, "a_modele", "brouillon-modele")
    (bad_template / "templates" / "mailbox_message.md.j2").write_text("{% if %}\n")
    unknown = _draft_from_sophia(defs, "a_cle", "brouillon-cle")
    text = (unknown / "campaign.yaml").read_text(encoding="utf-8")
    (unknown / "campaign.yaml").write_text(
        text.replace("horizon_days: 90\n", "horizon_days: 90\n  months: 3\n", 1), encoding="utf-8"
    )
    monkeypatch.setattr(catalog, "DEFINITIONS_DIR", defs)
    return defs


DRAFTS = {
    "brouillon-court": "a_court/campaign.yaml",
    "brouillon-modele": "a_modele/templates/mailbox_message.md.j2",
    "brouillon-cle": "a_cle/campaign.yaml",
}


def test_sophia_loads_and_targets_beside_broken_drafts(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_campaign("sophia-ald8").folder == (root / "sophia_ald8").resolve()
    Extract().person("A").write(tmp_path / "x")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app,
        ["target", "sophia-ald8", "--extract", "x", "--as-of", "2026-03-02", "--output", "t.csv"],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t.csv").read_text().startswith("ben_nir_psa,ben_rng_gem,eligible")


def test_the_listing_separates_valid_campaigns_from_broken_drafts(root: Path) -> None:
    listing = list_campaigns()
    assert [d.id for d in listing] == ["sophia-ald8"]
    errors = {d.id: d.error for d in listing.drafts}
    assert set(errors) == set(DRAFTS)
    for cid, file in DRAFTS.items():
        assert str(root / file) in errors[cid], errors[cid]
    assert "targeting.months" in errors["brouillon-cle"]
    assert re.search(r"mailbox_message\.md\.j2:1\b", errors["brouillon-modele"])


@pytest.mark.parametrize("cid", sorted(DRAFTS))
def test_a_broken_draft_is_refused_with_its_own_error(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cid: str
) -> None:
    with pytest.raises(DefinitionError) as e:
        load_campaign(cid)
    assert str(root / DRAFTS[cid]) in str(e.value)
    Extract().person("A").write(tmp_path / "x")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app, ["target", cid, "--extract", "x", "--as-of", "2026-03-02", "--output", "t.csv"]
    )
    assert r.exit_code == 2, r.output
    assert DRAFTS[cid].rsplit("/", 1)[-1] in r.output
    assert not (tmp_path / "t.csv").exists()


def test_a_folder_without_a_readable_id_is_a_draft_named_by_its_folder(root: Path) -> None:
    (root / "b_vide").mkdir()
    (root / "b_vide" / "campaign.yaml").write_text("name: [pas fermé\n")
    assert load_campaign("sophia-ald8").id == "sophia-ald8"
    drafts = {d.folder.name: d for d in list_campaigns().drafts}
    assert drafts["b_vide"].id is None
    assert str(root / "b_vide" / "campaign.yaml") in drafts["b_vide"].error


def _client(engine: Engine, tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none")
    return TestClient(create_app(settings, engine=engine))


def _login(c: TestClient, who: str) -> None:
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    data = {"username": who, "password": PW, "csrf": token.group(1), "next": "/"}
    assert c.post("/login", data=data, follow_redirects=False).status_code == 303


def _csrf(c: TestClient, path: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)
    assert m
    return m.group(1)


def test_console_pages_answer_beside_broken_drafts(
    root: Path, engine: Engine, tmp_path: Path
) -> None:
    d = load_campaign("sophia-ald8").definition
    targets, people = population(3, anchor=date(2026, 6, 15))
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d)
        day = date(2026, 3, 2)
        admit_targets(session=s, definition=d, targets=targets, people=people, today=day)
        for name, role in (("mgr", "campaign_manager"), ("adv", "adviser")):
            create_user(session=s, username=name, password=PW, role=role)
    mgr = _client(engine, tmp_path)
    _login(mgr, "mgr")
    page = mgr.get("/campaigns")
    assert page.status_code == 200, page.text[:500]
    assert "brouillon invalide" in page.text
    for cid, file in DRAFTS.items():
        assert cid in page.text
        assert file.rsplit("/", 1)[-1] in page.text
    assert "targeting.months" in page.text
    results = mgr.get("/campaigns/sophia-ald8/results")
    assert results.status_code == 200, results.text[:500]
    adv = _client(engine, tmp_path)
    _login(adv, "adv")
    assert adv.get("/calls").status_code == 200
    nxt: Any = adv.post("/calls/next", data={"csrf": _csrf(adv, "/calls")}, follow_redirects=False)
    assert nxt.status_code == 303, nxt.text[:500]


def test_two_drafts_with_one_id_do_not_hide_sophia(root: Path) -> None:
    first = _draft_from_sophia(root, "b_un", "brouillon-double")
    second = _draft_from_sophia(root, "b_deux", "brouillon-double")
    assert load_campaign("sophia-ald8").id == "sophia-ald8"
    for load in (lambda: load_campaign("brouillon-double"), list_campaigns):
        with pytest.raises(DefinitionError) as e:
            load()
        assert str(first) in str(e.value) and str(second) in str(e.value)
