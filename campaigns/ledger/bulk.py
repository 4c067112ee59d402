"""Set-based loading: rows into a temporary staging table (PostgreSQL COPY, SQLite chunks).

Admission and goal observation join these staging tables to the ledger in one statement
instead of one query per thousand people: at a flu wave's size (millions of rows) the
round trips, not the database, were the cost.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

# SQL types of staging columns, by the short names callers use.
_TYPES = {
    "text": ("text", "TEXT"),
    "int": ("bigint", "INTEGER"),
    "bool": ("boolean", "INTEGER"),
    "date": ("date", "DATE"),
    "timestamp": ("timestamp", "TIMESTAMP"),
    "json": ("json", "TEXT"),
}

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
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f'COPY "{name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                if jsons:
                    row = list(row)
                    for i in jsons:
                        row[i] = None if row[i] is None else json.dumps(row[i])
                copy.write_row(row)
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
