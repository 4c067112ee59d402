"""Writing actions into the ledger: one row per idempotency key, never two."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from campaigns.ledger.models import Action


def action_key(campaign_id: str, person_id: int, step: str, attempt: int) -> str:
    """The idempotency key of an outbound action: (campaign, person, step, attempt)."""
    return f"{campaign_id}:{person_id}:{step}:{attempt}"


def insert_actions(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert actions whose key is not in the ledger yet; return how many were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    ins: Any
    if dialect == "postgresql":
        ins = postgresql.insert(Action)
    elif dialect == "sqlite":
        ins = sqlite.insert(Action)
    else:  # pragma: no cover - we ship SQLite and PostgreSQL only
        raise NotImplementedError(dialect)
    # A multi-row VALUES needs the same columns in every row.
    columns = sorted({k for r in rows for k in r})
    rows = [{c: r.get(c) for c in columns} for r in rows]
    inserted = 0
    # Chunks keep each statement under the drivers' bound-parameter limits (PostgreSQL: 65,535).
    for i in range(0, len(rows), 500):
        stmt = (
            ins.values(list(rows[i : i + 500]))
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(Action.id)
        )
        # RETURNING counts what went in; rowcount is not reliable for multi-row inserts.
        inserted += len(session.execute(stmt).all())
    return inserted
