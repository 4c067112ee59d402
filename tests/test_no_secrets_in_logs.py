"""Health data stays out of logs: no NIR, phone number or e-mail in anything logged."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.settings import Settings
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox
from console.demo.simulator import at
from console.web.app import create_app
from tests.factories import population
from tests.test_console import PW, login, post
from tests.test_services import ANCHOR, CALL_DAY, D, setup


def test_a_day_of_work_logs_no_identifier(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    setup(engine, 6)
    _, people = population(6, anchor=ANCHOR)
    secrets = [*people["nir"], *people["telephone"], *people["email"]]
    tick(engine=engine, definition=D, today=CALL_DAY)
    adapters = Adapters(LocalMailbox(tmp_path), LocalEmail(tmp_path), LocalLetters(tmp_path))
    for day in (ANCHOR.replace(day=1), ANCHOR):
        tick(engine=engine, definition=D, today=day)
        for ch in ("mailbox", "email", "letter"):
            dispatch(
                engine=engine,
                campaign=load_campaign(D.id),
                channel=ch,
                adapters=adapters,
                today=day,
                now=at(day, 9),
            )
    with session_scope(engine) as s:
        create_user(session=s, username="adv", password=PW, role="adviser")
    app = create_app(Settings(data_dir=tmp_path, secret_key="s" * 40), engine=engine)
    app.state.clock = lambda: datetime(2026, 4, 16, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    c = TestClient(app)
    login(c, "adv")
    card = post(c, "/calls/next", {}, "/calls").headers["location"]
    post(c, f"{card}/reveal", {}, card)
    post(c, f"{card}/outcome", {"outcome": "refused"}, card)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged, "nothing was logged: the test would prove nothing"
    leaks = [s for s in secrets if s and s in logged]
    assert leaks == []
