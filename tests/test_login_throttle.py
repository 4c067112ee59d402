"""Login throttling per client address, on top of the per-account lock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.settings import Settings
from console.web.app import create_app
from console.web.throttle import LoginThrottle

PW = "correct horse battery"
T0 = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)


def test_throttle_counts_failures_in_a_sliding_window() -> None:
    t = LoginThrottle(max_failures=2, window=timedelta(minutes=10))
    assert t.retry_after("a", T0) is None
    t.failed("a", T0)
    t.failed("a", T0 + timedelta(minutes=1))
    assert t.retry_after("a", T0 + timedelta(minutes=2)) == 8 * 60
    assert t.retry_after("b", T0 + timedelta(minutes=2)) is None  # per address
    assert t.retry_after("a", T0 + timedelta(minutes=10)) is None  # the first one expired


def _post_login(c: TestClient, who: str, password: str, next_: str = "/") -> Any:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert m
    return c.post(
        "/login",
        data={"username": who, "password": password, "csrf": m.group(1), "next": next_},
        follow_redirects=False,
    )


def _login(c: TestClient, who: str, password: str) -> int:
    return int(_post_login(c, who, password).status_code)


def test_one_address_trying_many_accounts_is_slowed_down(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    upgrade(eng)
    with session_scope(eng) as s:
        for name in ("a1", "a2", "a3", "a4"):
            create_user(session=s, username=name, password=PW, role="campaign_manager")
    app = create_app(
        Settings(data_dir=tmp_path, secret_key="k" * 40, login_max_failures_per_address=3),
        engine=eng,
    )
    now = [T0]
    app.state.clock = lambda: now[0]
    c = TestClient(app)
    for name in ("a1", "a2", "a3"):  # one wrong guess per account: no account locks
        assert _login(c, name, "wrong password!") == 200
    assert _login(c, "a4", PW) == 429  # even the right password waits
    now[0] = T0 + timedelta(minutes=16)
    assert _login(c, "a4", PW) == 303
    eng.dispose()


@pytest.mark.parametrize(
    ("next_", "lands"),
    [
        ("/campaigns/sophia-ald8/results", "/campaigns/sophia-ald8/results"),
        ("/", "/campaigns"),  # the role's home
        ("//evil.example/x", "/campaigns"),
        ("/\\evil.example/x", "/campaigns"),  # browsers read `/\` as `//`
        ("/\\/evil.example", "/campaigns"),
        ("https://evil.example/", "/campaigns"),
        ("/\t/evil.example", "/campaigns"),
    ],
)
def test_after_login_the_next_page_is_on_this_site(tmp_path: Path, next_: str, lands: str) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    upgrade(eng)
    with session_scope(eng) as s:
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
    app = create_app(Settings(data_dir=tmp_path, secret_key="k" * 40), engine=eng)
    app.state.clock = lambda: T0
    r = _post_login(TestClient(app), "mgr", PW, next_)
    assert (r.status_code, r.headers["location"]) == (303, lands)
    eng.dispose()
