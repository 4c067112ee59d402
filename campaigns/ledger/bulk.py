"""Set-based loading: rows into a temporary staging table (PostgreSQL COPY, SQLite chunks), or
straight into a ledger table by COPY, with rows built in a thread while the COPY streams.

Admission and goal observation join these staging tables to the ledger in one statement
instead of one query per thousand people: at a flu wave's size (millions of rows) the
round trips, not the database, were the cost. Admission writes its new rows by `copy_into`.
"""

from __future__ import annotations

import gc
import json
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import text
from sqlmodel import Session

T = TypeVar("T")

# SQL types of staging columns, by the short names callers use.
_TYPES = {
    "text": ("text", "TEXT"),
    "int": ("bigint", "INTEGER"),
    "bool": ("boolean", "INTEGER"),
    "date": ("date", "DATE"),
    "timestamp": ("timestamp", "TIMESTAMP"),
    "json": ("json", "TEXT"),
}

# PostgreSQL type oids a binary COPY sends each kind as; JSON goes as its text (a json column's
# binary form is its text), already serialised.
_COPY_OIDS = {"text": 25, "int": 20, "bool": 16, "date": 1082, "timestamp": 1114, "json": 25}
_JSON_OID, _TEXT_OID = 114, 25

# SQLite's bound-parameter limit is 32,766: chunks of rows stay well under it.
_SQLITE_CHUNK = 2000


def is_postgresql(session: Session) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def _sqlite_value(kind: str, v: Any) -> Any:
    """A Python value as SQLAlchemy's SQLite types store it (dates as ISO text, JSON as text)."""
    if v is None:
        return None
    if kind == "date":
        return v.isoformat()
    if kind == "timestamp":
        return v.isoformat(sep=" ")
    if kind == "bool":
        return int(bool(v))
    if kind == "json":
        return json.dumps(v)
    return v


def stage(
    *,
    session: Session,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Create (or replace) the temporary table `name` and fill it with `rows`.

    `columns` are (name, kind) pairs, kind one of text, int, bool, date, timestamp, json
    (json values are Python objects). The table lives until the transaction ends (PostgreSQL)
    or until replaced (SQLite); it is analysed so joins on it get a sensible plan.
    """
    pg = is_postgresql(session)
    ddl = ", ".join(f'"{c}" {_TYPES[k][0 if pg else 1]}' for c, k in columns)
    names = ", ".join(f'"{c}"' for c, _ in columns)
    conn = session.connection()
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    if pg:
        conn.exec_driver_sql(f'CREATE TEMP TABLE "{name}" ({ddl}) ON COMMIT DROP')
        jsons = [i for i, (_, k) in enumerate(columns) if k == "json"]

        def serialised(row: Sequence[Any]) -> Sequence[Any]:
            if not jsons:
                return row
            out = list(row)
            for i in jsons:
                out[i] = None if out[i] is None else json.dumps(out[i])
            return out

        _copy(
            session,
            name,
            [c for c, _ in columns],
            [_COPY_OIDS[k] for _, k in columns],
            map(serialised, rows),
        )
    else:
        conn.exec_driver_sql(f'CREATE TEMP TABLE "{name}" ({ddl})')
        marks = ", ".join("?" for _ in columns)
        kinds = [k for _, k in columns]
        sql = f'INSERT INTO "{name}" ({names}) VALUES ({marks})'
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(tuple(_sqlite_value(k, v) for k, v in zip(kinds, row, strict=True)))
            if len(chunk) >= _SQLITE_CHUNK:
                conn.exec_driver_sql(sql, chunk)
                chunk = []
        if chunk:
            conn.exec_driver_sql(sql, chunk)
    conn.exec_driver_sql(f'ANALYZE "{name}"')


def copy_into(
    *, session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """PostgreSQL: append rows to a ledger table by one binary COPY.

    Values are sent as the table's own column types (read from the catalogue: a binary COPY
    takes no conversion); JSON values come already serialised. Nothing bypasses the table's
    constraints: keys, uniqueness and foreign keys are checked as for an INSERT."""
    oids = {
        n: int(o)
        for n, o in session.connection().exec_driver_sql(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %(t)s::regclass"
            " AND attnum > 0 AND NOT attisdropped",
            {"t": table},
        )
    }
    types = [_TEXT_OID if oids[c] == _JSON_OID else oids[c] for c in columns]
    _copy(session, table, columns, types, rows)


def _copy(
    session: Session,
    table: str,
    columns: Sequence[str],
    types: Sequence[int],
    rows: Iterable[Sequence[Any]],
) -> None:
    """One binary COPY of rows into a table, each column sent as the given type oid."""
    raw: Any = session.connection().connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    with (
        raw.cursor() as cur,
        cur.copy(f'COPY "{table}" ({names}) FROM STDIN (FORMAT BINARY)') as copy,
    ):
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


# Advisory lock classes (PostgreSQL), each with a name's hash: one holder at a time until its
# transaction ends.
_RESERVE_LOCK = 0x52454C49  # "RELI": id reservations of a table


def xact_lock(session: Session, kind: int, name: str) -> None:
    """PostgreSQL: wait for, then hold until the transaction ends, the lock (kind, name)."""
    session.connection().exec_driver_sql(
        "SELECT pg_advisory_xact_lock(%(k)s, hashtext(%(n)s))", {"k": kind, "n": name}
    )


def reserve_ids(session: Session, table: str, n: int) -> range:
    """PostgreSQL: a block of n fresh ids of the table's id sequence, for rows written by COPY.

    One `setval` moves the sequence past the block (n `nextval` calls cost ~3 µs each, 7 s for
    a region's wave). Reservations of a table run one at a time until their transaction ends;
    a plain INSERT taking its id from the sequence between the two calls would collide, so a
    table whose ids are reserved is written by bulk writers only (person and member: admission)."""
    if n <= 0:
        return range(0)
    xact_lock(session, _RESERVE_LOCK, table)
    last = (
        session.connection()
        .exec_driver_sql(
            "SELECT setval(s, nextval(s) + %(n)s - 1) FROM pg_get_serial_sequence(%(t)s, 'id') s",
            {"t": table, "n": n},
        )
        .scalar_one()
    )
    return range(int(last) - n + 1, int(last) + 1)


def stage_keys(*, session: Session, name: str, keys: Iterable[tuple[str, int]]) -> None:
    """A staging table of person keys (ben_nir_psa, ben_rng_gem), indexed for joins."""
    stage(
        session=session,
        name=name,
        columns=[("ben_nir_psa", "text"), ("ben_rng_gem", "int")],
        rows=keys,
    )


# Tables whose planner statistics a bulk write may leave stale (a fixed list: never SQL built
# from a caller's string).
_ANALYZABLE = frozenset({"person", "member", "memberevent", "action"})


def refresh_statistics(session: Session, tables: Sequence[str]) -> None:
    """PostgreSQL: ANALYZE tables a bulk write just grew by a lot (autovacuum's own analyze
    comes later, or never where it is off). Without it, the next tick's batch queries were
    planned for empty tables: 0.6 s for a batch lock that takes 2 ms (2.5 M members)."""
    unknown = set(tables) - _ANALYZABLE
    if unknown:
        raise ValueError(f"tables inconnues : {', '.join(sorted(unknown))}")
    if not is_postgresql(session):
        return
    session.execute(text(f"ANALYZE {', '.join(tables)}"))


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk build of plain rows (millions of tuples and
    lists, none in a cycle): its passes over a growing heap cost ~15 % of an admission."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of an iterable, computed by a thread at most `depth` items ahead of the
    consumer (who may be waiting on the database meanwhile); an error in the thread is
    raised to the consumer, and a consumer that stops early stops the thread."""
    out: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as error:  # handed to the consumer, who raises it
            put((False, error))

    worker = threading.Thread(target=run, name="relance-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = out.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


_END = object()
