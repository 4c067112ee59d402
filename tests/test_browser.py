"""The console's real pages in headless Chromium: an adviser's calls, the board, local validation.

A screenshot of each page is kept under var/test-artifacts/screenshots/.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from tests.factories import population

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
SHOTS = Path(__file__).resolve().parents[1] / "var" / "test-artifacts" / "screenshots"
D = load_campaign("sophia-ald8").definition
PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 6, 15)
CALL_DAY = date(2026, 4, 20)  # a Monday
NOW = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)
PW = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from console.web.app import create_app

    tmp = tmp_path_factory.mktemp("console")
    engine = make_engine(f"sqlite:///{tmp / 'relance.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        for name, role, echelon in [
            ("adv", "adviser", None),
            ("sup", "supervisor", None),
            ("lead93", "echelon_lead", "93"),
            ("mgr", "campaign_manager", None),
            ("reg", "regional_lead", None),
            ("root", "admin", None),
        ]:
            create_user(session=s, username=name, password=PW, role=role, echelon=echelon)
        create_user(
            session=s, username="adv2", password=PW, role="adviser", phone_line="+33100000002"
        )
        register_campaign(session=s, definition=D, launched=True)
        targets, people = population(6, anchor=ANCHOR)
        admit_targets(
            session=s,
            definition=D,
            targets=targets,
            people=people,
            today=CALL_DAY - timedelta(days=1),
        )
    tick(engine=engine, definition=D, today=CALL_DAY)
    app = create_app(Settings(data_dir=tmp, secret_key="b" * 40), engine=engine)
    app.state.clock = lambda: NOW
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(browser: Any, base: str, who: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PW)
    page.click("button[type=submit]")
    # A slow run may still be on the login page when the click returns.
    page.wait_for_url(lambda url: "/login" not in url)
    page.wait_for_load_state()
    return page


def test_an_advisers_calls_and_the_board_changing(server: str, browser: Any) -> None:
    sup = login(browser, server, "sup")
    assert sup.url.endswith("/board")
    shot(sup, "01-board-before")
    adv = login(browser, server, "adv")
    assert adv.url.endswith("/calls")
    shot(adv, "02-calls")
    adv.click("#next")
    adv.wait_for_url("**/calls/*")
    assert "•• •• ••" in adv.inner_text("#phone")
    shot(adv, "03-card-masked")
    adv.click("#reveal")
    # The reveal is a fetch: the click returns before the number arrives.
    deadline = time.time() + 15
    while "•• •• ••" in adv.inner_text("#phone") and time.time() < deadline:
        time.sleep(0.2)
    assert adv.inner_text("#phone").startswith("+3361234")
    shot(adv, "04-card-revealed")
    # A callback within contact hours (Tuesday 10:00, Paris).
    # DSFR draws radios and checkboxes on their label, which takes the click: force it.
    adv.check("input[value=callback]", force=True)
    adv.fill("input[name=callback_at]", "2026-04-21T10:00")
    adv.click("#save")
    adv.wait_for_url("**/calls")
    adv.click("#next")
    adv.wait_for_url("**/calls/*")
    adv.check("input[value=refused]", force=True)
    adv.check("input[name=offers] >> nth=0", force=True)
    adv.click("#save")
    shot(adv, "05-calls-after")
    deadline = time.time() + 15
    text = ""
    while time.time() < deadline:  # the board refreshes itself every 5 s
        text = sup.inner_text("#figures")
        if "refus : 1" in text and "rappeler (date et heure) : 1" in text:
            break
        time.sleep(0.5)
    assert "refus : 1" in text and "rappeler (date et heure) : 1" in text, text
    shot(sup, "06-board-after")


def test_an_echelon_lead_reviews_the_list(server: str, browser: Any, tmp_path: Path) -> None:
    lead = login(browser, server, "lead93")
    lead.goto(f"{server}/campaigns")
    shot(lead, "07-campaigns")
    lead.goto(f"{server}/campaigns/sophia-ald8/validation?echelon=75")
    assert "403" in lead.content()
    lead.goto(f"{server}/campaigns/sophia-ald8/validation")
    assert "Aucune liste" in lead.content()  # this campaign was launched already
    shot(lead, "08-validation")


def test_the_regional_leads_page(server: str, browser: Any) -> None:
    reg = login(browser, server, "reg")
    reg.set_viewport_size({"width": 1366, "height": 768})
    reg.goto(f"{server}/campaigns/sophia-ald8/results?periode=mois")
    assert reg.locator("#results").is_visible()
    # Fits a 1366 px screen: nothing wider than the window, so no horizontal scroll.
    assert reg.evaluate("() => document.documentElement.scrollWidth") <= 1366
    box = reg.locator("#results").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1366
    # Six people, nobody has reached the goal: the charts say so instead of an empty frame.
    assert reg.locator("#chart-attainment svg").count() == 1
    for chart in ("#chart-cumulative", "#chart-uplift"):
        assert reg.locator(f"{chart} svg").count() == 0
        assert "Pas assez de données" in reg.locator(chart).inner_text()
    assert "groupe témoin" in reg.locator("#chart-uplift").inner_text()
    assert reg.locator("#periode").input_value() == "mois"
    shot(reg, "09-results")


def test_an_adviser_places_the_call_from_the_card(server: str, browser: Any) -> None:
    adv = login(browser, server, "adv2")
    adv.click("#next")
    adv.wait_for_url("**/calls/*")
    adv.click("#dial")
    # The embedded telephony takes the call at once; the card polls its status.
    # Polled from here: the page's CSP forbids the string evaluation wait_for_function uses.
    deadline = time.time() + 15
    while adv.inner_text("#call-status") == "—" and time.time() < deadline:
        time.sleep(0.2)
    # The status may already carry its duration ("décroché (3 s)") on a slow run.
    state = adv.inner_text("#call-status").split(" (")[0]
    assert state in ("lancement", "ça sonne", "décroché", "terminé"), state
    assert "•• •• ••" in adv.inner_text("#phone")  # dialling does not show the number
    shot(adv, "10-card-dialled")
