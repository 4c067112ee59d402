"""Database engine, sessions and schema migrations."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    String,
    bindparam,
    cast,
    event,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from campaigns.settings import get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Array element types of `unnest_rows` columns.
_SQL_TYPES: dict[str, Any] = {
    "text": String(),
    "int": Integer(),
    "bool": Boolean(),
    "date": Date(),
    "timestamptz": DateTime(timezone=True),
}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the console) work while a flow writes; busy_timeout waits for the writer.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _create_private_file(path: Path) -> None:
    """Create the ledger 0600 in a 0700 folder (SQLite gives its -wal and -shm the same mode)."""
    import os

    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


def json_loads(data: str | bytes | memoryview) -> Any:
    """A JSON column's value, decoded as UTF-8 text first: given bytes, `json.loads` guesses
    their encoding, half its time on a dispatch batch's two JSON columns a message."""
    return json.loads(data if isinstance(data, str) else bytes(data).decode("utf-8"))


def _binary_lists(dbapi_conn: Any, _record: Any) -> None:
    """PostgreSQL: list parameters (`among`, `unnest_rows`) sent as binary arrays.

    psycopg's default for a list is the text format, built element by element in Python:
    ~4× the binary format's time, thousands of ids and values a dispatch or tick batch.
    """
    from psycopg.types.array import ListBinaryDumper

    dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)


def make_engine(url: str) -> Engine:
    """An engine for the URL, with SQLite tuned for one writer and many readers."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            _create_private_file(Path(path))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
            json_deserializer=json_loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # hide_parameters: a failed statement's message would otherwise carry NIRs and numbers.
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        hide_parameters=True,
        json_deserializer=json_loads,
    )
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "connect", _binary_lists)
    return engine


def alembic_config(url: str) -> Any:
    """An Alembic config pointing at our migrations and the given database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# Alembic keeps its running context in module globals: two threads migrating at once in one
# process break each other (KeyError: 'script'). Every migration in the process goes through this.
_MIGRATION_LOCK = threading.RLock()
# Any constant shared by every Relance process: PostgreSQL serialises their migrations on it.
_PG_MIGRATION_LOCK_ID = 70612


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Hold an exclusive lock on a file beside the SQLite database (other processes wait)."""
    import fcntl
    import os

    db = engine.url.database
    if not db or db == ":memory:":
        yield
        return
    lock_path = Path(f"{db}.migrate.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest migration, one migrating thread or process at a time."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with _MIGRATION_LOCK:
        if engine.dialect.name == "sqlite":
            with _sqlite_file_lock(engine), engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Released at commit: the next process then finds the schema at head.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_ID})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


_engines: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """The process-wide engine for the configured database, migrated once on first use."""
    url = url or get_settings().resolved_database_url()
    engine = _engines.get(url)
    if engine is not None:
        return engine
    # Tasks of one flow run start on threads at once: one creates and migrates, the others wait.
    with _ENGINES_LOCK:
        if url not in _engines:
            engine = make_engine(url)
            if migrate:
                upgrade(engine)
            _engines[url] = engine
        return _engines[url]


def plan_each_statement(session: Session, on: bool = True) -> None:
    """PostgreSQL: plan this transaction's statements with the table sizes of the moment
    (`on`), or let it reuse cached plans again (foreign-key checks are cached plans, replanned
    row by row otherwise). A tick that grows `action` by millions needs the first for its
    reads: a plan the driver prepared while the table was small scans it whole every time."""
    if session.get_bind().dialect.name == "postgresql":
        mode = "force_custom_plan" if on else "auto"
        session.execute(text(f"SET LOCAL plan_cache_mode = {mode}"))


def among(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column` is one of `ids`: one array parameter on PostgreSQL (a list of thousands of
    bound values costs more to send and plan than the query takes), an IN list on SQLite."""
    test: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        test = column == func.any(bindparam("among", list(ids), type_=ARRAY(Integer), unique=True))
    else:
        test = column.in_(list(ids))
    return test


def among_pairs(
    session: Session, first: Any, second: Any, pairs: Sequence[tuple[str, int]]
) -> ColumnElement[bool]:
    """`(first, second)` is one of `pairs` (a person's SNDS key): two array parameters zipped
    by `unnest` on PostgreSQL, a tuple IN list on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return tuple_(first, second).in_(list(pairs))
    a = bindparam("pair_a", [p[0] for p in pairs], type_=ARRAY(String), unique=True)
    b = bindparam("pair_b", [p[1] for p in pairs], type_=ARRAY(Integer), unique=True)
    zipped = func.unnest(a, b).table_valued("a", "b").render_derived(name="pairs")
    return tuple_(first, second).in_(select(zipped.c.a, zipped.c.b))


def unnest_rows(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> Any:
    """PostgreSQL: `rows` as a table `v(columns…)` from one array parameter per column.

    Thousands of rows go as a handful of parameters: the driver neither parses nor binds a
    statement with one placeholder per value (psycopg parsed a 20,000-value INSERT in
    Python, ~40 % of a mailbox dispatch on PostgreSQL). `columns` are (name, SQL type).
    """
    arrays = [
        bindparam(f"col_{name}", [r[i] for r in rows], type_=ARRAY(_SQL_TYPES[kind]), unique=True)
        for i, (name, kind) in enumerate(columns)
    ]
    return func.unnest(*arrays).table_valued(*(n for n, _ in columns)).render_derived(name="v")


def unnest_values(
    columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *, varying: str
) -> dict[str, Any]:
    """PostgreSQL: each column's SQL value by name, from `unnest_rows` for those that vary.

    A column with one value in every row (the campaign, step, day, state of a batch) is one
    typed parameter instead of an array of thousands of copies, each dumped in Python.
    `varying`: a column always sent as an array (one that differs per row, e.g. the key).
    """
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = [
        i
        for i, (name, _) in enumerate(columns)
        if name == varying or not by_column[i] or by_column[i].count(by_column[i][0]) != len(rows)
    ]
    v = unnest_rows(
        [columns[i] for i in arrays], list(zip(*(by_column[i] for i in arrays), strict=True))
    )
    out: dict[str, Any] = {}
    for i, (name, kind) in enumerate(columns):
        if i in arrays:
            out[name] = v.c[name]
        else:
            one = bindparam(f"one_{name}", by_column[i][0], type_=_SQL_TYPES[kind], unique=True)
            out[name] = cast(one, _SQL_TYPES[kind])
    return out
