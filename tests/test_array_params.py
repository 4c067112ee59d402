"""List parameters: one array per list on PostgreSQL, sent in the binary format."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from campaigns.clock import utcnow
from campaigns.ledger.db import among, session_scope, unnest_rows, unnest_values
from campaigns.ledger.models import Person


def _person(s: Session, i: int) -> int:
    p = Person(
        ben_nir_psa=f"P{i}", ben_rng_gem=1, nir="184127645108946", civilite="Mme", nom="DUPONT",
        prenom="Anne", address_lines=[], echelon="75", departement="75", updated_at=utcnow(),
    )  # fmt: skip
    s.add(p)
    s.flush()
    return p.id or 0


def test_among_finds_exactly_the_ids_asked(engine: Engine) -> None:
    with session_scope(engine) as s:
        ids = [_person(s, i) for i in range(1, 6)]
    with session_scope(engine) as s:
        for asked in ([], [ids[0]], ids[1:4], [*ids, 10**6]):
            got = s.exec(select(Person.id).where(among(s, Person.id, asked))).all()
            assert sorted(got) == sorted(set(asked) & set(ids))


def test_unnest_rows_round_trips_awkward_values(pg_engine: Engine) -> None:
    """Quotes, commas, braces, backslashes, accents and NULLs come back as sent, by column."""
    rows = [
        (1, 'a "b", {c} \\d é', True, date(2026, 4, 16), datetime(2026, 4, 16, 8, 30, tzinfo=UTC)),
        (2, None, None, None, None),
        (3, "", False, date(1, 1, 1), datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ]
    v = unnest_rows(
        [("id", "int"), ("t", "text"), ("b", "bool"), ("d", "date"), ("ts", "timestamptz")], rows
    )
    with session_scope(pg_engine) as s:
        got = s.connection().execute(select(v.c.id, v.c.t, v.c.b, v.c.d, v.c.ts)).all()
        assert [tuple(r) for r in got] == rows
        empty = unnest_rows([("id", "int"), ("t", "text")], [])
        assert s.connection().execute(select(empty.c.id)).all() == []


def test_lists_go_to_postgresql_in_the_binary_format(pg_engine: Engine) -> None:
    """The text format builds each array element by element in Python (~4× slower)."""
    from psycopg.adapt import PyFormat
    from psycopg.types.array import ListBinaryDumper

    raw = pg_engine.raw_connection()
    try:
        dumper = raw.driver_connection.adapters.get_dumper(list, PyFormat.AUTO)  # type: ignore[union-attr]
    finally:
        raw.close()
    assert issubclass(dumper, ListBinaryDumper)


@pytest.mark.parametrize("n", [1, 5_000])
def test_among_takes_a_large_list_as_one_parameter(pg_engine: Engine, n: int) -> None:
    with session_scope(pg_engine) as s:
        stmt = select(Person.id).where(among(s, Person.id, list(range(n))))
        assert len(stmt.compile(dialect=pg_engine.dialect).params) == 1


def test_unnest_values_sends_a_column_with_one_value_as_one_parameter(pg_engine: Engine) -> None:
    """Same rows back whatever each column holds; only the columns that vary are arrays."""
    rows = [
        (1, "sophia-ald8", None, date(2026, 4, 16), "a"),
        (2, "sophia-ald8", None, date(2026, 4, 16), "b"),
        (3, "sophia-ald8", None, date(2026, 4, 16), "a"),
    ]
    columns = [("id", "int"), ("c", "text"), ("n", "int"), ("d", "date"), ("s", "text")]
    values = unnest_values(columns, rows, varying="id")
    assert sorted(values["id"].table.c.keys()) == ["id", "s"]
    with session_scope(pg_engine) as s:
        got = s.connection().execute(select(*(values[n] for n, _ in columns))).all()
        assert sorted(tuple(r) for r in got) == rows
        one = [(7, "x", None, None, None)]
        values = unnest_values(columns, one, varying="id")
        assert list(values["id"].table.c.keys()) == ["id"]
        got = s.connection().execute(select(*(values[n] for n, _ in columns))).all()
        assert [tuple(r) for r in got] == one
