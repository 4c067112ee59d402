"""Shared fixtures: a migrated database on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from campaigns.ledger.db import make_engine, upgrade

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# No test writes into the checkout's var/: one that forgets its own data folder (a console
# campaign version, an outbox) writes here, and the catalogue of a later run does not see it.
os.environ.setdefault("RELANCE_DATA_DIR", tempfile.mkdtemp(prefix="relance-tests-"))

# In CI the property and fuzz tests replay the same examples (a red CI names a change, not a
# draw); on a developer's machine they keep exploring.
if os.environ.get("CI"):
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    _hypothesis_settings.load_profile("ci")
os.environ.setdefault("RELANCE_DATA_KEYS", "dGVzdC1vbmx5LWtleS1yZWxhbmNlLWNvbnRhY3QtZGE=")
# Many tests share one data_dir and many databases: automatic audit checkpoints are off
# unless a test turns them on with a data_dir of its own (tests/test_audit_log.py).
os.environ.setdefault("RELANCE_AUDIT_KEY", "test-only-audit-key")
os.environ.setdefault("RELANCE_AUDIT_CHECKPOINT_EVERY", "0")

PG_ADMIN_URL = os.environ.get(
    "RELANCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and not reachable at {PG_ADMIN_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"relance_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as c:
        c.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        )
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL engine, shared by the session."""
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                c.execute(text(f"DELETE FROM {t}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated, empty database: each service test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "relance.db"
        eng = make_engine(f"sqlite:///{path}")
        upgrade(eng)
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("pg_engine")
        _truncate(eng)
        yield eng


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test API for the whole session (it takes ~20 s to start)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real `prefect server` (not the test API) for the session, with the `relance` process
    pool; started by the first test that needs it (~20 s), shared by the others."""
    from tests.prefect_server import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as srv:
        srv.cli("work-pool", "create", "relance", "--type", "process", "--overwrite")
        yield srv


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointing at a fresh SQLite ledger and outbox."""
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'relance.db'}")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def launch(engine: Engine, campaign_id: str, by: str = "test-manager") -> dict[str, object]:
    """Every échelon validates the pending list and a manager approves it."""
    from datetime import date

    from campaigns.cascade.review import approve, list_status, pending_list, sign_off
    from campaigns.ledger.db import session_scope

    with session_scope(engine) as s:
        lst = pending_list(session=s, campaign_id=campaign_id)
        assert lst is not None
        for echelon in list_status(session=s, target_list=lst).per_echelon:
            sign_off(session=s, target_list=lst, echelon=echelon, by=f"lead-{echelon}")
        return approve(session=s, target_list=lst, by=by, today=date(2026, 3, 2))


def _mock(spec: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.contract_mocks import MockUnavailable, prism

    try:
        with prism(spec, log=tmp_path_factory.mktemp("prism") / f"{spec.stem}.log") as url:
            yield url
    except MockUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"contract mock unavailable in CI: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def twilio_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of Prism serving Twilio's 2010-04-01 contract."""
    from tests.contract_mocks import TWILIO_SPEC

    yield from _mock(TWILIO_SPEC, tmp_path_factory)


@pytest.fixture(scope="session")
def sendgrid_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of Prism serving SendGrid's v3 Mail Send contract."""
    from tests.contract_mocks import SENDGRID_SPEC

    yield from _mock(SENDGRID_SPEC, tmp_path_factory)


@pytest.fixture(scope="session")
def mailbox_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of Prism serving our own mailbox service contract (docs/api)."""
    from tests.contract_mocks import MAILBOX_SPEC

    yield from _mock(MAILBOX_SPEC, tmp_path_factory)
