"""Writing actions into the ledger: one row per idempotency key, never two."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from campaigns.ledger.models import Action


def action_key(campaign_id: str, person_id: int, step: str, attempt: int) -> str:
    """The idempotency key of an outbound action: (campaign, person, step, attempt)."""
    return f"{campaign_id}:{person_id}:{step}:{attempt}"


@dataclass(frozen=True, slots=True)
class ActionRow:
    """A new action as written: the columns of one ledger row (bulk-inserted, not an ORM object)."""

    campaign_id: str
    member_id: int
    person_id: int
    priority: bool
    anchor_date: date | None
    created_at: datetime
    updated_at: datetime
    key: str
    step: str
    channel: str
    attempt: int
    due_on: date
    state: str
    reason: str | None
    due_at: datetime | None = None
    definition_version: int | None = None


_COLUMNS = tuple(f.name for f in fields(ActionRow))


def insert_actions(session: Session, actions: Sequence[ActionRow]) -> int:
    """Insert actions whose key is not in the ledger yet; return how many were new."""
    if not actions:
        return 0
    # Every row has the same columns, as a multi-row VALUES needs.
    rows = [{c: getattr(a, c) for c in _COLUMNS} for a in actions]
    dialect = session.get_bind().dialect.name
    ins: Any
    if dialect == "postgresql":
        ins = postgresql.insert(Action)
    elif dialect == "sqlite":
        ins = sqlite.insert(Action)
    else:  # pragma: no cover - we ship SQLite and PostgreSQL only
        raise NotImplementedError(dialect)
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
