"""Every page of every role passes axe-core's WCAG 2.1 A/AA rules (zero violations).

axe-core comes from tools/ui (npm, locked). The console's CSP forbids inline and injected
scripts, so the audit contexts alone are opened with Playwright's `bypass_csp=True`; the
other browser tests keep the real policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_browser import PW, browser, server  # noqa: F401  (module fixtures)

AXE = (
    Path(__file__).resolve().parents[1]
    / "tools"
    / "ui"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)
pytestmark = pytest.mark.skipif(not AXE.exists(), reason="scripts/setup.sh not run (axe-core)")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# Each role's pages (the login and error pages are audited anonymously and as a user).
PAGES = {
    None: ["/login", "/page-introuvable"],
    "adv": ["/calls", "NEXT"],
    "sup": [
        "/board",
        "/people",
        "/people?nom=NOM0&naissance=01/01/1960&code_postal=91000",
        "/campaigns",
    ],
    "lead93": [
        "/campaigns",
        "/campaigns/sophia-ald8/validation",
        "/campaigns/sophia-ald8/validation?echelon=75",
    ],
    "reg": ["/campaigns", "/campaigns/sophia-ald8/results"],
    "mgr": [
        "/campaigns",
        "/campaigns/sophia-ald8/validation",
        "/people",
        "/campaigns/sophia-ald8/preview",
    ],
    "root": [
        "/calls",
        "/board",
        "/people",
        "/campaigns",
        "/campaigns/sophia-ald8/validation",
        "/campagne-inconnue",
    ],
}


def audit(page: Any) -> list[str]:
    """axe-core's violations on the page, one line each: rule, help, targets."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => [v.id, v.help, v.nodes.map(n => n.target.join(' '))]))",
        TAGS,
    )
    return [f"{page.url} {rule} — {help_}: {', '.join(targets)}" for rule, help_, targets in found]


@pytest.mark.parametrize("who", list(PAGES))
def test_every_page_of_every_role_has_no_axe_violation(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    who: str | None,
) -> None:
    page = browser.new_context(bypass_csp=True).new_page()
    if who:
        page.goto(f"{server}/login")
        page.fill("input[name=username]", who)
        page.fill("input[name=password]", PW)
        page.click("button[type=submit]")
        page.wait_for_load_state()
    problems: list[str] = []
    for path in PAGES[who]:
        if path == "NEXT":  # the call card: claimed from the list
            page.goto(f"{server}/calls")
            page.click("#next")
            page.wait_for_load_state()
        else:
            page.goto(f"{server}{path}")
        problems += audit(page)
    assert not problems, "violations axe-core (WCAG 2.1 A/AA) :\n" + "\n".join(problems)


def test_the_managers_results_page_has_no_axe_violation(
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    page = browser.new_context(bypass_csp=True).new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PW)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{server}/campaigns/sophia-ald8/results")
    problems = audit(page)
    assert not problems, "violations axe-core (WCAG 2.1 A/AA) :\n" + "\n".join(problems)
