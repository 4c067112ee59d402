"""The campaign preview: audience per échelon with the others' reasons, the cascade, each
template for sample people (the letter as a PDF), the policy's deferrals; both backends."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.app import stages
from campaigns.app.preview import PreviewError, preview_campaign, preview_letter
from campaigns.clock import UTC
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import AuditEvent, Opposition, Person
from campaigns.settings import Settings
from console.web.app import create_app
from targeting.engine import run_targeting

AS_OF = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
PW = "correct horse battery"
SOPHIA = load_campaign("sophia-ald8")


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from targeting.synth import write_extract

    out = tmp_path_factory.mktemp("extract") / "x"
    write_extract(out=out, people=30_000, seed=7, as_of=AS_OF, fmt="parquet")
    return out


def _expected(extract: Path) -> tuple[Counter[str], Counter[str]]:
    rows = run_targeting(
        rule=SOPHIA.definition.targeting, extract=extract, as_of=AS_OF, include_ineligible=True
    ).to_pylist()
    eligible = Counter(r["echelon"] for r in rows if r["eligible"])
    reasons: Counter[str] = Counter()
    for r in rows:
        if not r["eligible"]:
            reasons.update(x for x in r["reasons"].split(";") if x)
    return eligible, reasons


def test_the_preview_counts_renders_and_defers(engine: Engine, extract: Path) -> None:
    stages.register(engine=engine, campaign=SOPHIA)
    stages.targeting_stage(engine=engine, campaign=SOPHIA, extract=extract, day=AS_OF)
    with session_scope(engine) as s:
        person = s.exec(select(Person)).first()
        assert person is not None
        s.add(
            Opposition(
                ben_nir_psa=person.ben_nir_psa,
                ben_rng_gem=person.ben_rng_gem,
                canal="all",
                opposed_on=AS_OF - timedelta(days=3),
                source="test",
            )
        )
    with session_scope(engine) as s:
        p = preview_campaign(
            session=s, actor="mgr", campaign_id="sophia-ald8", day=AS_OF, extract=extract, now=NOW
        )
    eligible, reasons = _expected(extract)
    assert p.audience is not None and p.audience_error is None
    assert {e.echelon: e.eligible for e in p.audience.per_echelon} == dict(eligible)
    assert p.audience.eligible == sum(eligible.values()) > 0
    assert {r.code: r.n for r in p.audience.reasons} == dict(reasons)
    assert all(r.label and r.label != r.code for r in p.audience.reasons)  # in words
    # the cascade in start order, each template for a priority and a non-priority sample
    assert [t.id for t in p.timeline] == [
        s.id for s in sorted(SOPHIA.definition.cascade, key=lambda s: s.start_days)
    ]
    assert "renouvellement" in p.timeline[0].window or "J" in p.timeline[0].window
    assert len(p.rendered) == 2 * len(SOPHIA.definition.cascade)
    assert all(r.error is None and r.body for r in p.rendered)
    assert any("MARTIN" in r.body for r in p.rendered)
    # the opposed eligible person is counted among those the first contact cannot reach
    assert p.first_step is not None and p.known > 0
    assert {c.code: c.n for c in p.deferred}.get("opposed_all") == 1
    with session_scope(engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "campaign_preview")).all()
    assert len(events) == 1 and events[0].actor == "mgr"


def test_without_an_extract_the_rest_is_shown(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as s:
        p = preview_campaign(
            session=s, actor="mgr", campaign_id="sophia-ald8", day=AS_OF, extract=tmp_path / "no"
        )
    assert p.audience is None and p.audience_error and "aucun extrait" in p.audience_error
    assert p.timeline and p.rendered


def test_the_letter_is_the_pdf_the_print_house_would_get(engine: Engine) -> None:
    letter = next(s for s in SOPHIA.definition.cascade if s.channel == "letter")
    with session_scope(engine) as s:
        pdf = preview_letter(
            session=s, actor="mgr", campaign_id="sophia-ald8", step_id=letter.id, priority=True
        )
        assert pdf.startswith(b"%PDF")
        with pytest.raises(PreviewError, match="pas d'étape courrier"):
            preview_letter(
                session=s, actor="mgr", campaign_id="sophia-ald8", step_id="nope", priority=True
            )
        with pytest.raises(PreviewError, match="campagne inconnue"):
            preview_campaign(
                session=s, actor="mgr", campaign_id="inconnue", day=AS_OF, extract=None
            )


def _client(engine: Engine, tmp_path: Path, extract: Path, who: str) -> TestClient:
    app = create_app(
        Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=extract), engine=engine
    )
    app.state.clock = lambda: NOW
    c = TestClient(app)
    m = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert m
    r = c.post(
        "/login",
        data={"username": who, "password": PW, "csrf": m.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    return c


def test_the_preview_page_for_a_draft_and_a_campaign(
    engine: Engine, extract: Path, tmp_path: Path
) -> None:
    from campaigns.app.drafts import create_draft

    with session_scope(engine) as s:
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
        create_user(session=s, username="adv", password=PW, role="adviser")
        create_draft(
            session=s, actor="mgr", campaign_id="essai", name="Essai", origin="sophia-ald8"
        )
    mgr = _client(engine, tmp_path, extract, "mgr")
    page = mgr.get("/campaigns/sophia-ald8/preview?date=2026-03-02")
    assert page.status_code == 200, page.text
    text = page.text
    assert "Audience au 02/03/2026" in text and "Éligibles par échelon" in text
    eligible, _ = _expected(extract)
    assert f"<strong>{sum(eligible.values())}</strong>" in text
    assert "Le courrier en PDF" in text
    pdf = re.search(r'href="(/campaigns/sophia-ald8/preview/[a-z_0-9]+\.pdf\?priorite=1)"', text)
    assert pdf, text
    got = mgr.get(pdf.group(1).replace("&amp;", "&"))
    assert got.status_code == 200 and got.content.startswith(b"%PDF")
    assert got.headers["content-type"] == "application/pdf"
    # a draft is previewed from its own files, never seen by the flows
    draft = mgr.get("/campaigns/essai/preview")
    assert draft.status_code == 200 and "brouillon" in draft.text
    bad = mgr.get("/campaigns/sophia-ald8/preview?date=demain")
    assert bad.status_code == 200 and "pas une date (AAAA-MM-JJ)" in bad.text
    assert mgr.get("/campaigns/inconnue/preview").status_code == 404
    # an adviser does not preview campaigns
    adv = _client(engine, tmp_path, extract, "adv")
    assert adv.get("/campaigns/sophia-ald8/preview").status_code == 403
    assert adv.get(pdf.group(1)).status_code == 403
