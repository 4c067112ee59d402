"""Start-up on a fresh database: many threads and many processes at once, one migration."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

THREADS_SCRIPT = """
import sys, threading
from campaigns.db import get_engine
url = sys.argv[1]
barrier = threading.Barrier(8)
errors = []
def go():
    barrier.wait()
    try:
        with get_engine(url).connect() as c:
            c.exec_driver_sql("select count(*) from action").scalar()
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=go) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("errors:", len(errors))
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
"""

PROCESS_SCRIPT = """
import sys
from campaigns.db import get_engine
with get_engine(sys.argv[1]).connect() as c:
    c.exec_driver_sql("select count(*) from action").scalar()
print("ok")
"""


def _fresh_pg_url(pg_url: str, name: str) -> str:
    from sqlalchemy import create_engine

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg(pg_url: str, name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='{name}'")
        )
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database no process has migrated yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'relance.db'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    name = f"relance_fresh_{uuid.uuid4().hex[:10]}"
    yield _fresh_pg_url(pg_url, name)
    _drop_pg(pg_url, name)


def test_threads_on_a_fresh_process_migrate_once(fresh_url: str) -> None:
    # A fresh interpreter: the first get_engine() of each thread races for the migration.
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT, fresh_url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_processes_starting_together_on_a_fresh_database(fresh_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, fresh_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err


def test_the_ledger_file_is_private(tmp_path: Path) -> None:
    from campaigns.db import get_engine

    db = tmp_path / "new" / "relance.db"
    with get_engine(f"sqlite:///{db}").connect() as c:
        c.exec_driver_sql("select 1")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for extra in db.parent.glob("relance.db-*"):
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra.name


def test_one_engine_per_url_under_threads(tmp_path: Path) -> None:
    from campaigns.db import get_engine

    url = f"sqlite:///{tmp_path / 'x.db'}"
    barrier = threading.Barrier(6)
    got: list[object] = []

    def go() -> None:
        barrier.wait()
        got.append(get_engine(url))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in got}) == 1
