"""The audit log: append-only, each event chained to the previous one by its hash."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from campaigns.clock import utcnow
from campaigns.models import AuditEvent

GENESIS = "0" * 64


def _digest(prev: str, at: datetime, actor: str, action: str, target: str, detail: Any) -> str:
    body = json.dumps(
        [prev, at.isoformat(), actor, action, target, detail], sort_keys=True, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event (who did or saw what) to the chain."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # One writer at a time extends the chain (released at commit).
        session.execute(text("SELECT pg_advisory_xact_lock(70611)"))
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    prev = last.hash if last else GENESIS
    detail = detail or {}
    ev = AuditEvent(
        at=now,
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        prev_hash=prev,
        hash=_digest(prev, now, actor, action, target, detail),
    )
    session.add(ev)
    session.flush()
    return ev


def verify(*, session: Session) -> tuple[int, int | None]:
    """(events checked, id of the first broken event or None)."""
    prev, n = GENESIS, 0
    for ev in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))):
        n += 1
        if ev.prev_hash != prev or ev.hash != _digest(
            prev, ev.at, ev.actor, ev.action, ev.target, ev.detail
        ):
            return n, ev.id
        prev = ev.hash
    return n, None
