"""A member's targeting explanation, stored once (JSON) so a person page only reads it."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from campaigns.ledger.models import MemberExplanation


def as_json(explanation: Any) -> dict[str, Any]:
    """An explanation (a dataclass) as JSON-safe data: dates as ISO strings."""
    if dataclasses.is_dataclass(explanation) and not isinstance(explanation, type):
        data: Any = dataclasses.asdict(explanation)
    else:
        data = explanation
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return out


def stored_explanation(*, session: Session, member_id: int) -> dict[str, Any] | None:
    """The stored explanation, its `as_of` back to a date; None when none was stored."""
    row = session.get(MemberExplanation, member_id)
    if row is None:
        return None
    body = dict(row.body)
    body["as_of"] = row.as_of
    return body


def store_explanation(
    *, session: Session, member_id: int, as_of: date, explanation: Any, now: datetime
) -> None:
    """Keep (or replace) a member's explanation."""
    row = session.get(MemberExplanation, member_id) or MemberExplanation(
        member_id=member_id, as_of=as_of, body={}, stored_at=now
    )
    row.as_of, row.body, row.stored_at = as_of, as_json(explanation), now
    session.add(row)
    session.flush()


def store_explanations(
    *, session: Session, rows: list[tuple[int, date, Any]], now: datetime
) -> None:
    """Keep many new explanations (member id, as of, explanation) in one bulk insert."""
    if rows:
        session.execute(
            insert(MemberExplanation),
            [
                {"member_id": mid, "as_of": as_of, "body": as_json(x), "stored_at": now}
                for mid, as_of, x in rows
            ],
        )
