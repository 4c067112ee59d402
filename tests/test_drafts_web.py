"""The campaign managers' pages through HTTP: the list, a draft edited and checked in the
browser, ready, a new version from a date, pause/resume/end, and the roles denied."""

from __future__ import annotations

import html
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.definition import files as definition_files
from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import AuditEvent, Campaign, CampaignVersion
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from console.demo.simulator import at
from console.web.app import create_app

PW = "correct horse battery"
DAY = date(2026, 10, 14)
NOW = at(DAY, 9)


@pytest.fixture
def client_for(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    root = tmp_path / "campaigns"
    monkeypatch.setattr(definition_files, "console_root", lambda: root)
    with session_scope(engine) as s:
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
        create_user(session=s, username="adv", password=PW, role="adviser")
        create_user(session=s, username="sup", password=PW, role="supervisor")

    def make(who: str, now: datetime = NOW) -> TestClient:
        app = create_app(
            Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none"),
            engine=engine,
        )
        app.state.clock = lambda: now
        c = TestClient(app)
        token = _csrf(c, "/login")
        r = c.post(
            "/login",
            data={"username": who, "password": PW, "csrf": token, "next": "/"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        return c

    return make


def _csrf(c: TestClient, path: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)
    assert m
    return m.group(1)


def _files(page: str) -> dict[str, str]:
    names = re.findall(r'name="names" value="([^"]+)"', page)
    texts = re.findall(r'name="texts"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    return {n: html.unescape(t) for n, t in zip(names, texts, strict=True)}


def _create(c: TestClient, cid: str = "essai-web", origin: str = "sophia-ald8") -> Any:
    return c.post(
        "/campaigns/new",
        data={
            "campaign_id": cid,
            "name": "Essai web",
            "origin": origin,
            "csrf": _csrf(c, "/campaigns/new"),
        },
        follow_redirects=False,
    )


def _save(c: TestClient, cid: str, files: dict[str, str], then: str = "save") -> Any:
    return c.post(
        f"/drafts/{cid}/save",
        data={
            "names": list(files),
            "texts": list(files.values()),
            "then": then,
            "csrf": _csrf(c, f"/drafts/{cid}"),
        },
        follow_redirects=False,
    )


def test_the_list_shows_state_dates_counts_and_next_run(client_for: Any) -> None:
    c = client_for("mgr")
    page = c.get("/campaigns")
    assert page.status_code == 200
    assert "sophia-ald8" in page.text and "prête" in page.text
    assert "non planifié" in page.text and "Créer une campagne" in page.text
    # Other roles keep the page they had.
    assert "Créer une campagne" not in client_for("sup").get("/campaigns").text


def test_a_draft_is_edited_checked_and_made_ready_in_the_browser(
    client_for: Any, engine: Engine
) -> None:
    c = client_for("mgr")
    r = _create(c)
    assert r.status_code == 303 and r.headers["location"].startswith("/drafts/essai-web")
    files = _files(c.get("/drafts/essai-web").text)
    assert "id: essai-web" in files["campaign.yaml"]
    broken = {
        **files,
        "campaign.yaml": files["campaign.yaml"].replace(
            "horizon_days: 90\n", "horizon_days: 90\n  mois: 3\n"
        ),
        "templates/letter.html.j2": "<p>\n{% if %}\n",
    }
    line = broken["campaign.yaml"].splitlines().index("  mois: 3") + 1
    checked = _save(c, "essai-web", broken, then="check")
    assert checked.status_code == 200
    assert f"campaign.yaml:{line}: targeting.mois: clé inconnue" in checked.text
    assert "templates/letter.html.j2:2: syntaxe du modèle" in checked.text
    refused = c.post("/drafts/essai-web/ready", data={"csrf": _csrf(c, "/drafts/essai-web")})
    assert refused.status_code == 400 and "ne peut pas être marqué prêt" in refused.text
    # An upload replaces one file.
    upload = c.post(
        "/drafts/essai-web/upload",
        data={"csrf": _csrf(c, "/drafts/essai-web")},
        files={"upload": ("letter.html.j2", files["templates/letter.html.j2"].encode())},
        follow_redirects=False,
    )
    assert upload.status_code == 303
    fixed = {**_files(c.get("/drafts/essai-web").text), "campaign.yaml": files["campaign.yaml"]}
    ok = _save(c, "essai-web", fixed, then="check")
    assert "Aucun problème" in ok.text
    ready = c.post(
        "/drafts/essai-web/ready",
        data={"csrf": _csrf(c, "/drafts/essai-web")},
        follow_redirects=False,
    )
    assert ready.status_code == 303 and ready.headers["location"].startswith("/campaigns/essai-web")
    assert campaign_by_id("essai-web").definition.name == "Essai web"
    page = c.get("/campaigns/essai-web")
    assert "prête" in page.text and "/campaigns/essai-web/preview" in page.text
    with session_scope(engine) as s:
        saved = s.exec(select(AuditEvent).where(AuditEvent.action == "campaign_draft_save")).all()
        assert {e.actor for e in saved} == {"mgr"}


def test_a_bad_upload_is_refused_in_french(client_for: Any) -> None:
    c = client_for("mgr")
    _create(c)
    r = c.post(
        "/drafts/essai-web/upload",
        data={"csrf": _csrf(c, "/drafts/essai-web")},
        files={"upload": ("lettre.html.j2", "é".encode("latin-1"))},
    )
    assert r.status_code == 400 and "pas en UTF-8" in r.text


def test_a_running_campaign_edit_is_a_version_from_a_chosen_date(
    client_for: Any, engine: Engine
) -> None:
    c = campaign_by_id("sophia-ald8")
    with session_scope(engine) as s:
        register_campaign(
            session=s, definition=c.definition, launched=True, now=NOW, folder=c.folder
        )
    mgr = client_for("mgr")
    form = mgr.get("/campaigns/sophia-ald8/edit")
    assert form.status_code == 200
    files = _files(form.text)
    files["campaign.yaml"] = files["campaign.yaml"].replace(
        'name: "sophia — renouvellement ALD 8"', 'name: "sophia — ALD 8, v2"'
    )
    token = _csrf(mgr, "/campaigns/sophia-ald8/edit")

    def send(day: date) -> Any:
        return mgr.post(
            "/campaigns/sophia-ald8/versions",
            data={
                "names": list(files),
                "texts": list(files.values()),
                "effective_on": day.isoformat(),
                "csrf": token,
            },
            follow_redirects=False,
        )

    today = send(DAY)
    assert today.status_code == 400 and "au plus tôt demain" in today.text
    later = DAY + timedelta(days=7)
    assert send(later).status_code == 303
    page = mgr.get("/campaigns/sophia-ald8")
    assert later.strftime("%d/%m/%Y") in page.text and "mgr" in page.text
    with session_scope(engine) as s:
        versions = s.exec(
            select(CampaignVersion).where(CampaignVersion.campaign_id == "sophia-ald8")
        ).all()
        assert sorted((v.version, v.effective_on) for v in versions) == [(1, DAY), (2, later)]


def test_pause_resume_and_end_with_a_reason(client_for: Any, engine: Engine) -> None:
    c = campaign_by_id("sophia-ald8")
    with session_scope(engine) as s:
        register_campaign(session=s, definition=c.definition, launched=True, now=NOW)
    mgr = client_for("mgr")
    page = "/campaigns/sophia-ald8"
    assert "Suspendre" in mgr.get(page).text
    r = mgr.post(f"{page}/pause", data={"csrf": _csrf(mgr, page)}, follow_redirects=False)
    assert r.status_code == 303
    assert "en pause" in mgr.get(page).text
    mgr.post(f"{page}/resume", data={"csrf": _csrf(mgr, page)})
    no_reason = mgr.post(f"{page}/end", data={"csrf": _csrf(mgr, page)})
    assert "demande un motif" in no_reason.text
    with session_scope(engine) as s:
        assert s.get(Campaign, "sophia-ald8").ended_at is None  # type: ignore[union-attr]
    mgr.post(f"{page}/end", data={"csrf": _csrf(mgr, page), "reason": "budget épuisé"})
    with session_scope(engine) as s:
        assert s.get(Campaign, "sophia-ald8").ended_at is not None  # type: ignore[union-attr]
        end = s.exec(select(AuditEvent).where(AuditEvent.action == "campaign_end")).one()
        assert end.detail["reason"] == "budget épuisé" and end.actor == "mgr"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/campaigns/new"),
        ("get", "/campaigns/sophia-ald8"),
        ("get", "/campaigns/sophia-ald8/edit"),
        ("post", "/campaigns/sophia-ald8/pause"),
        ("post", "/campaigns/sophia-ald8/end"),
        ("post", "/campaigns/new"),
    ],
)
def test_an_adviser_is_denied(client_for: Any, method: str, path: str) -> None:
    adv = client_for("adv")
    if method == "get":
        assert adv.get(path).status_code == 403
    else:
        token = _csrf(adv, "/calls")
        assert adv.post(path, data={"csrf": token, "campaign_id": "x"}).status_code == 403
