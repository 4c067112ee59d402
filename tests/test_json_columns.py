"""JSON columns are read back whole, from text or from the driver's bytes."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.ledger.db import json_loads, session_scope
from campaigns.ledger.models import AuditEvent


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": [1, "é", null, true]}', {"a": [1, "é", None, True]}),
        (b'["x"]', ["x"]),
        (memoryview(b"[1]"), [1]),
        ("[123456789012345678901234567890]", [123456789012345678901234567890]),  # past 64 bits
    ],
)
def test_json_loads_reads_what_json_wrote(text: object, value: object) -> None:
    assert json_loads(text) == value  # type: ignore[arg-type]


def test_a_json_column_round_trips_on_both_databases(engine: Engine) -> None:
    """A 30-digit integer (no float on the way) and accented text come back from either."""
    from datetime import UTC, datetime

    detail = {"ratio": 0.5, "big": 10**29, "nom": "Zoé", "lignes": ["1 RUE É"]}
    with session_scope(engine) as s:
        s.add(AuditEvent(seq=1, at=datetime.now(UTC), actor="a", action="x", target="t",
                         detail=detail, prev_hash="0" * 64, hash="0" * 64))  # fmt: skip
    with session_scope(engine) as s:
        got = s.exec(select(AuditEvent)).one().detail
    assert got == detail and isinstance(got["big"], int)
