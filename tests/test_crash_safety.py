"""Nothing lost, nothing sent twice: the dispatcher, the tick and the enrolment ingestion
SIGKILLed at random points and restarted, and PostgreSQL restarted under the dispatcher.

The workers are real processes (tests/crash/worker.py); the provider side is a loopback
mock in front of Prism that counts effects per key (tests/crash/idempotent_mock.py).
bench/reliability/crash.py runs the same at the issue's sizes (docs/reliability.md).
"""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.contract_mocks import MAILBOX_SPEC, SENDGRID_SPEC, MockUnavailable, prism
from tests.crash.driver import (
    drop_pg_database,
    fresh_pg_database,
    run_crash_campaign,
    run_enrolment_campaign,
    run_tick_campaign,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mailbox_upstream() -> Iterator[str]:
    try:
        with prism(MAILBOX_SPEC) as url:
            yield url
    except MockUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def sendgrid_upstream() -> Iterator[str]:
    try:
        with prism(SENDGRID_SPEC) as url:
            yield url
    except MockUnavailable as e:
        pytest.skip(str(e))


def test_mailbox_dispatcher_killed_five_times_deposits_each_message_once(
    mailbox_upstream: str, tmp_path: Path
) -> None:
    # Batch deposits (12 messages a request, 4 in flight) finish 2,000 messages in ~2 s: a
    # provider slowed to 20 requests/s keeps the run long enough for the kills to land in it
    # (at 40/s, under a loaded CI, only 2 of the 5 did).
    r = run_crash_campaign(
        2000, 5, f"sqlite:///{tmp_path / 'l.db'}", upstream=mailbox_upstream, per_second=20
    )
    print(r)
    assert r["problems"] == []
    assert r["kills"] >= 3  # most kills land on a live dispatcher (the rest found it done)
    assert r["provider_effects"] == r["keys_with_effect"] == 2000
    assert r["duplicates"] == 0
    assert r["ledger_states"] == {"sent": 2000}


def test_the_campaign_sees_duplicates_when_the_provider_ignores_the_key(
    mailbox_upstream: str, tmp_path: Path
) -> None:
    # The control: same kills, a mailbox that deposits on every request. The exactly-once
    # result above is owed to the key, and the check is able to fail.
    r = run_crash_campaign(
        600,
        2,
        f"sqlite:///{tmp_path / 'l.db'}",
        upstream=mailbox_upstream,
        delay=(0.5, 1.5),
        honour_key=False,
        per_second=20,
    )
    print(r)
    assert r["kills"] >= 1
    assert r["duplicates"] > 0
    assert any("more than once" in p for p in r["problems"])
    assert r["keys_with_effect"] == 600  # still nothing lost


def test_sendgrid_dispatcher_killed_loses_nothing_and_bounds_duplicates(
    sendgrid_upstream: str, tmp_path: Path
) -> None:
    # Mail Send has no idempotency key: a kill between SendGrid's 202 and our commit sends
    # that batch again. At-least-once, with at most one batch per kill.
    r = run_crash_campaign(
        1000,
        3,
        f"sqlite:///{tmp_path / 'l.db'}",
        upstream=sendgrid_upstream,
        channel="email",
        delay=(0.2, 1.0),
        per_second=4,  # 20 requests take ~5 s: the kills land mid-run
    )
    print(r)
    assert r["problems"] == []
    assert r["kills"] >= 2
    assert r["keys_with_effect"] == 1000
    assert r["duplicates"] <= r["kills"] * r["batch"]
    assert r["ledger_states"] == {"sent": 1000}


def test_tick_killed_mid_run_decides_as_an_uninterrupted_tick(tmp_path: Path) -> None:
    # Kills land within 0.05–0.4 s of the worker being ready: the tick of 6,000 members takes
    # ~1 s on SQLite, and each restart has less left to do (a slower window let it finish).
    r = run_tick_campaign(6000, 3, tmp_path, batch=200, delay=(0.05, 0.4))
    print(r)
    assert r["problems"] == []
    assert r["kills"] >= 2
    assert r["actions"] > 0 and r["members_left"] > 0


def test_enrolment_ingestion_killed_mid_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    r = run_enrolment_campaign(5000, 3000, 3, tmp_path)
    print(r)
    assert r["problems"] == []
    assert r["kills"] >= 2
    assert r["members_closed"] > 0


def _forget_dead_connections() -> None:
    """Drop the pooled connections the restart killed, in every engine of this session.

    The session's `pg_url` fixture keeps an admin engine without `pool_pre_ping`: its pooled
    connection died with the restart, and its teardown (DROP DATABASE) would fail on it.
    """
    for obj in gc.get_objects():
        if isinstance(obj, Engine) and obj.dialect.name == "postgresql":
            obj.dispose()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not shutil.which("pg_isready"),
    reason="restarting PostgreSQL needs root and pg_ctlcluster",
)
def test_postgres_restarted_under_the_mailbox_dispatcher(
    mailbox_upstream: str, pg_url: str
) -> None:
    admin = pg_url.rsplit("/", 1)[0] + "/" + os.environ.get("RELANCE_TEST_PG_DB", "test")
    name = f"relance_crash_{uuid.uuid4().hex[:8]}"
    url = fresh_pg_database(admin, name)
    try:
        r = run_crash_campaign(
            1000, 1, url, upstream=mailbox_upstream, pg_restarts=1, delay=(0.5, 1.5), per_second=20
        )
    finally:
        drop_pg_database(admin, name)
        _forget_dead_connections()
    print(r)
    assert r["problems"] == []
    assert r["db_restarts"] == 1
    assert r["provider_effects"] == r["keys_with_effect"] == 1000
    assert r["ledger_states"] == {"sent": 1000}
