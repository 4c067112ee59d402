"""Many advisers at once on PostgreSQL: nobody claimed twice, no outcome lost."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from bench.console.load import prepare, run


@pytest.mark.postgres
def test_concurrent_advisers_never_share_a_person(pg_engine: Engine) -> None:
    from tests.conftest import _truncate

    _truncate(pg_engine)
    prepare(pg_engine, 400)
    out = run(pg_engine, advisers=12, seconds=4)
    assert out["errors"] == []
    assert out["claims"] > 50
    assert out["double_claims"] == 0
    assert out["lost_outcomes"] == 0 and out["outcomes_recorded"] == out["claims"]
