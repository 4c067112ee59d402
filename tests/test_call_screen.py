"""The adviser's call in one screen: card, rendered script and outcome panel; save and next;
keyboard; same-day callbacks and "mes rappels"; "Passer"; the step's window; the claim's commit."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.responses import RedirectResponse
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import CANCELLED, DONE, QUEUED, Action
from campaigns.ledger.registry import register_campaign
from console.web import routes_calls
from console.web.markup import render_markdown
from tests.factories import population
from tests.test_console import ANCHOR, CALL_DAY, PARIS, D, app_for, login, post

__all__ = ["app_for"]  # the fixture, shared with the console's tests

NOW = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)


def queued(engine: Engine, n: int) -> None:
    targets, people = population(n, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=CALL_DAY - timedelta(1)
        )
    tick(engine=engine, definition=D, today=CALL_DAY)


def claim(c: TestClient) -> str:
    r = post(c, "/calls/next", {}, "/calls")
    assert r.status_code == 303
    return str(r.headers["location"])


def test_the_script_is_rendered_and_escaped() -> None:
    html = str(render_markdown("## Avant\n- **Mme <b>X</b>**\n  - détail\n\n« Bonjour *vous* »"))
    assert "<h4>Avant</h4>" in html and "<strong>Mme &lt;b&gt;X&lt;/b&gt;</strong>" in html
    assert "<ul><li>" in html and "<em>vous</em>" in html and "<b>" not in html


def test_one_screen_with_history_and_a_kept_draft(app_for: Any, engine: Engine) -> None:
    queued(engine, 1)
    adv = app_for(NOW)
    login(adv, "adv")
    card_path = claim(adv)
    aid = int(card_path.rsplit("/", 1)[1])
    # An earlier call of the person, with its note: shown on the card.
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None
        s.add(
            Action(
                key="earlier",
                campaign_id=a.campaign_id,
                member_id=a.member_id,
                person_id=a.person_id,
                step="call",
                channel="phone",
                attempt=0,
                due_on=date(2026, 4, 14),
                state=DONE,
                outcome="no_answer",
                outcome_notes="a dit de rappeler le matin",
                done_on=date(2026, 4, 14),
                claimed_by="adv",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    page = adv.get(card_path).text
    assert 'class="call-screen"' in page and 'class="call-right"' in page
    assert "a dit de rappeler le matin" in page and "14/04/2026" in page
    assert "<h4>Avant l&#39;appel</h4>" in page or "<h4>Avant l'appel</h4>" in page
    assert "## " not in page and "**" not in page
    # No inline script nor handler (the console's CSP): one static script, served.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == [] and "onclick" not in page
    assert adv.get("/static/call.js").status_code == 200
    assert 'accesskey="1"' in page and "<kbd>1</kbd>" in page and 'value="next"' in page
    # Tab order: the outcome choices come right after the card's buttons, before the offers.
    assert page.index('name="outcome"') < page.index('id="save-next"') < page.index('id="offers"')
    # A refused outcome (a callback in the past) keeps what was typed.
    r = post(
        adv,
        f"{card_path}/outcome",
        {"outcome": "callback", "callback_at": "2026-04-19T10:00", "notes": "veut Mme Dupré"},
        card_path,
    )
    assert r.headers["location"].startswith(f"{card_path}?e=")
    again = adv.get(r.headers["location"]).text
    assert "veut Mme Dupré</textarea>" in again and 'value="2026-04-19T10:00"' in again
    assert re.search(r'value="callback"[^>]*checked', again)


def test_save_and_next_opens_the_next_call(app_for: Any, engine: Engine) -> None:
    queued(engine, 2)
    adv = app_for(NOW)
    login(adv, "adv")
    first = claim(adv)
    r = post(adv, f"{first}/outcome", {"outcome": "refused", "then": "next"}, first)
    second = r.headers["location"]
    assert re.fullmatch(r"/calls/\d+", second) and second != first
    assert adv.get(second).status_code == 200
    r = post(adv, f"{second}/outcome", {"outcome": "refused", "then": "next"}, second)
    assert r.headers["location"].startswith("/calls?m=")


def test_a_same_day_callback_is_queued_at_once(app_for: Any, engine: Engine) -> None:
    queued(engine, 1)
    adv = app_for(NOW)
    login(adv, "adv")
    card = claim(adv)
    r = post(
        adv, f"{card}/outcome", {"outcome": "callback", "callback_at": "2026-04-20T15:30"}, card
    )
    assert r.headers["location"] == "/calls"
    with session_scope(engine) as s:
        follow = s.exec(select(Action).where(Action.state == QUEUED, Action.attempt == 2)).one()
        assert follow.due_on == CALL_DAY and follow.due_at is not None
        assert follow.due_at.astimezone(PARIS).hour == 15
    home = adv.get("/calls").text
    assert "Mes rappels" in home and "20/04/2026 15:30" in home and "dans la file" in home
    # Due at 15:30, not before; then it is offered.
    assert post(adv, "/calls/next", {}, "/calls").headers["location"].startswith("/calls?m=")
    later = app_for(NOW.replace(hour=15, minute=31))
    login(later, "adv")
    assert re.fullmatch(r"/calls/\d+", claim(later))


def test_skip_never_gives_the_same_person_back_that_day(app_for: Any, engine: Engine) -> None:
    queued(engine, 1)
    adv = app_for(NOW)
    login(adv, "adv")
    card = claim(adv)
    assert post(adv, f"{card}/release", {}, card).headers["location"] == "/calls"
    assert claim(adv).startswith("/calls?m=")  # the only person: not given back to adv
    with session_scope(engine) as s:
        create_user(session=s, username="adv2", password="correct horse battery", role="adviser")
    other = app_for(NOW)
    login(other, "adv2")
    assert claim(other) == card  # another adviser may take it
    tomorrow = app_for(NOW + timedelta(days=1))
    login(tomorrow, "adv")
    post(other, f"{card}/release", {}, card)
    assert claim(tomorrow) == card  # and adv again the next day


def test_no_call_is_offered_after_its_steps_window(app_for: Any, engine: Engine) -> None:
    queued(engine, 1)
    late = app_for(datetime(2026, 6, 15, 10, 0, tzinfo=PARIS))  # the anchor date: window ended
    login(late, "adv")
    assert claim(late).startswith("/calls?m=")
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.channel == "phone")).one()
        assert a.state == CANCELLED and a.reason == "window_passed"


def test_the_claim_is_committed_before_the_card(
    app_for: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser may ask for the card before the claim's request has closed its session:
    the claim commits itself before answering (else, now and then, the card says "not yours")."""
    queued(engine, 1)
    adv = app_for(NOW)
    login(adv, "adv")
    seen: dict[str, str | None] = {}

    def redirect(url: str, status_code: int = 307) -> RedirectResponse:
        # What another connection sees at the moment the route answers.
        if m := re.fullmatch(r"/calls/(\d+)", url):
            with Session(engine) as s:
                a = s.get(Action, int(m.group(1)))
                seen[url] = a.claimed_by if a else None
        return RedirectResponse(url, status_code=status_code)

    monkeypatch.setattr(routes_calls, "RedirectResponse", redirect)
    card = claim(adv)
    assert seen == {card: "adv"}
