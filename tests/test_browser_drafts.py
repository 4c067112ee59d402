"""A campaign manager in Chromium: the campaigns page, a draft made, broken, checked, fixed and
made ready, then a running campaign paused, resumed and ended with a reason. Screenshots of
each page are kept under var/test-artifacts/screenshots/ (cm-*.png)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from campaigns.definition import files as definition_files
from campaigns.definition.catalog import campaign_by_id, load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.ledger.models import AuditEvent, Campaign
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from tests.test_browser import PW, browser, login, shot
from tests.test_browser import _free_port as free_port

__all__ = ["browser"]  # the module's Chromium, shared with the advisers' walk


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Path]]:
    import uvicorn

    from console.web.app import create_app

    tmp = tmp_path_factory.mktemp("cm-console")
    mp = pytest.MonkeyPatch()
    mp.setattr(definition_files, "console_root", lambda: tmp / "campaigns")
    engine = make_engine(f"sqlite:///{tmp / 'relance.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
        grippe = load_campaign("grippe-2026")
        register_campaign(session=s, definition=grippe.definition, folder=grippe.folder)
    app = create_app(Settings(data_dir=tmp, secret_key="c" * 40), engine=engine)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", engine, tmp
    srv.should_exit = True
    thread.join(timeout=10)
    mp.undo()


def _set_file(page: Any, name: str, text: str) -> None:
    names = page.eval_on_selector_all("input[name=names]", "els => els.map(e => e.value)")
    page.locator("textarea[name=texts]").nth(names.index(name)).fill(text)


def test_a_campaign_manager_drafts_checks_readies_pauses_and_ends(
    server: tuple[str, Any, Path], browser: Any
) -> None:
    base, engine, tmp = server
    mgr = login(browser, base, "mgr")
    errors: list[str] = []
    mgr.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    mgr.goto(f"{base}/campaigns")
    assert "non planifié" in mgr.content()
    shot(mgr, "cm-01-campaigns")
    mgr.click("text=Créer une campagne")
    mgr.fill("#campaign_id", "essai-navigateur")
    mgr.fill("#name", "Essai navigateur")
    mgr.select_option("#origin", "sophia-ald8")
    shot(mgr, "cm-02-new")
    mgr.click("form[action='/campaigns/new'] button")
    assert mgr.url.split("?")[0].endswith("/drafts/essai-navigateur")
    shot(mgr, "cm-03-draft")
    letter = campaign_by_id("sophia-ald8").folder / "templates" / "letter.html.j2"
    _set_file(mgr, "templates/letter.html.j2", "<p>\n{% if %}\n")
    mgr.click("button[value=check]")
    assert "templates/letter.html.j2:2: syntaxe du modèle" in mgr.content()
    shot(mgr, "cm-04-check-problems")
    mgr.click("form[action$='/ready'] button")
    assert "ne peut pas être marqué prêt" in mgr.content()
    _set_file(mgr, "templates/letter.html.j2", letter.read_text(encoding="utf-8"))
    mgr.click("button[value=check]")
    assert "Aucun problème" in mgr.content()
    shot(mgr, "cm-05-check-ok")
    mgr.click("form[action$='/ready'] button")
    assert mgr.url.split("?")[0].endswith("/campaigns/essai-navigateur")
    assert "prête" in mgr.content()
    assert (tmp / "campaigns" / "essai-navigateur" / "v1" / "campaign.yaml").is_file()
    shot(mgr, "cm-06-ready")
    mgr.goto(f"{base}/campaigns/grippe-2026")
    assert "en cours" in mgr.content()
    mgr.click("form[action$='/pause'] button")
    assert "en pause" in mgr.content()
    shot(mgr, "cm-07-paused")
    mgr.click("form[action$='/resume'] button")
    assert "campagne reprise" in mgr.content()
    mgr.click("text=Terminer…")
    mgr.fill("input[name=reason]", "fin de la saison")
    shot(mgr, "cm-08-end-reason")
    mgr.click("form[action$='/end'] button")
    assert "campagne terminée" in mgr.content()
    shot(mgr, "cm-09-ended")
    # No script or style refused by the CSP (the refused « Marquer prête » is a 400, on purpose).
    assert [e for e in errors if "Content Security Policy" in e or "Refused" in e] == []
    assert len(errors) == 1 and "400" in errors[0]
    with session_scope(engine) as s:
        row = s.get(Campaign, "grippe-2026")
        assert row is not None and row.ended_at is not None
        end = s.exec(select(AuditEvent).where(AuditEvent.action == "campaign_end")).one()
        assert end.detail["reason"] == "fin de la saison"
