"""A dispatcher's claim walks the ids from its cursor, whatever the planner's statistics say."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine

from campaigns.cascade.sending import claim_statement, ids_in_order
from campaigns.ledger.db import session_scope
from console.demo.simulator import at
from tests.test_dispatch import MAILBOX_DAY, D, setup


def test_a_claim_reads_its_batch_not_every_claimable_row(engine: Engine) -> None:
    setup(engine, 200, MAILBOX_DAY, telephone=None)
    with engine.begin() as c:
        c.execute(text("ANALYZE"))
        # The mailbox dispatch then writes the day's notices: the statistics know none.
        c.execute(
            text(
                "INSERT INTO action (key, campaign_id, member_id, person_id, step, channel, "
                "attempt, due_on, state, priority, tries, created_at, updated_at) "
                "SELECT key || '-notice', campaign_id, member_id, person_id, 'mailbox_notice', "
                "'email', 1, due_on, 'queued', priority, 0, created_at, updated_at FROM action"
            )
        )
    now = at(MAILBOX_DAY, 8)
    with session_scope(engine) as s:
        stmt = claim_statement(
            s,
            campaign_id=D.id,
            channel="email",
            today=MAILBOX_DAY,
            now=now,
            limit=20,
            stale_before=now - timedelta(minutes=10),
            after_id=50,
        )
        dialect = s.get_bind().dialect
        sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN" if dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        with ids_in_order(s):
            plan = "\n".join(str(r[-1]) for r in s.connection().exec_driver_sql(f"{explain} {sql}"))
        s.rollback()
    # In id order from the cursor: no sort of every claimable row, no bitmap of them.
    assert "Sort" not in plan and "Bitmap" not in plan and "TEMP B-TREE" not in plan, plan
    assert "action_pkey" in plan or "PRIMARY KEY (rowid>?)" in plan, plan
