"""A day of each role in Chromium, keyboard only for the adviser; a screenshot of every page
goes to test-artifacts/screens/ (git-ignored). Shares test_browser's server and browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.test_browser import browser, login, server  # noqa: F401  (module fixtures)

SCREENS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screens"


def screen(page: Any, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def open_next_call_with_enter(page: Any) -> None:
    """On the call list, Enter opens the next call: « Contact suivant » has the focus."""
    # Chromium applies `autofocus` at its next rendering, which may come after the load event
    # on a busy machine: an Enter pressed before it went nowhere (a CI run timed out here).
    expect(page.locator("#next")).to_be_focused()
    page.keyboard.press("Enter")
    try:
        page.wait_for_url("**/calls/*")
    except Exception:  # say where the browser is and what the page told the adviser
        text = page.inner_text("main") if page.locator("main").count() else ""
        raise AssertionError(f"no call opened, still on {page.url}: {text[:300]}") from None


def test_an_advisers_day_on_the_keyboard(server: str, browser: Any) -> None:  # noqa: F811
    page = browser.new_context().new_page()
    page.goto(f"{server}/login")
    screen(page, "conseiller-01-connexion")
    page.keyboard.press("Tab")  # the first Tab reaches « Aller au contenu »
    assert page.evaluate("document.activeElement.textContent") == "Aller au contenu"
    page.focus("#username")
    page.keyboard.type("adv2")
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery")
    page.keyboard.press("Enter")
    page.wait_for_url("**/calls")
    screen(page, "conseiller-02-liste")
    open_next_call_with_enter(page)
    first = page.url
    screen(page, "conseiller-03-fiche")
    key = page.get_attribute("input[value=refused]", "data-key")
    page.locator("#notes").blur()
    page.keyboard.press(str(key))
    assert page.is_checked(f"input[data-key='{key}']")
    page.keyboard.press("Control+Enter")  # save and open the next call
    # Wait through Playwright: a time.sleep loop never lets the sync client process the
    # navigation events, so page.url stayed on the first card although the browser had left it.
    try:
        page.wait_for_url(lambda url: url != first and "/calls/" in url, timeout=15_000)
    except Exception:  # report the page's French error, if any
        err = page.inner_text("#error") if page.locator("#error").count() else ""
        raise AssertionError(f"still on {page.url}: {err}") from None
    assert page.locator("#call-screen").count() == 1
    screen(page, "conseiller-04-apres-enregistrement")


def test_a_supervisors_day(server: str, browser: Any) -> None:  # noqa: F811
    page = login(browser, server, "sup")
    assert page.url.endswith("/board")
    screen(page, "superviseur-01-tableau")
    page.goto(f"{server}/people")
    page.fill("#nom", "NOM1")
    page.fill("#naissance", "01/01/1961")
    page.fill("#code_postal", "91000")
    page.click("#search-form button")
    screen(page, "superviseur-02-recherche")


def test_leads_managers_and_admins_pages(server: str, browser: Any) -> None:  # noqa: F811
    for who, paths in {
        "lead93": ["/campaigns", "/campaigns/sophia-ald8/validation"],
        "reg": ["/campaigns", "/campaigns/sophia-ald8/results"],
        "mgr": ["/campaigns", "/campaigns/sophia-ald8/validation"],
        "root": ["/calls", "/board", "/people", "/campaigns"],
    }.items():
        page = login(browser, server, who)
        for n, path in enumerate(paths, start=1):
            page.goto(f"{server}{path}")
            assert page.locator("main#contenu").is_visible()
            assert "Aller au contenu" in page.inner_text(".fr-skiplinks")
            screen(page, f"{who}-{n:02d}{path.replace('/', '-')}")


def test_the_call_screen_fits_a_1366x768_screen(server: str, browser: Any) -> None:  # noqa: F811
    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    page.goto(f"{server}/login")
    page.fill("#username", "adv")  # adv2 still holds the keyboard day's call
    page.fill("#password", "correct horse battery")
    page.keyboard.press("Enter")
    page.wait_for_url("**/calls")
    open_next_call_with_enter(page)
    page.screenshot(path=str(SCREENS / "conseiller-fiche-1366x768.png"))
    boxes = {s: page.locator(s).bounding_box() for s in ("#card", "#script", "#outcome")}
    assert boxes["#card"]["y"] + boxes["#card"]["height"] <= 768, boxes
    assert boxes["#script"]["y"] + 100 <= 768, boxes  # the script's first lines are in view
    save = page.locator("#save-next").bounding_box()
    assert save["y"] + save["height"] <= 768, save  # the whole outcome panel, without scrolling
