"""SendGrid Event Webhook events applied to the outbox: delivered, bounced, dropped, opened.

Each event is kept once (by `sg_event_id`), matched to its action by the `relance_key` the
adapter put in `custom_args`, and never moves an action backwards: a late `delivered` after
a bounce, or a duplicate, changes nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from campaigns.clock import paris_today
from campaigns.definition.reasons import Reason
from campaigns.ledger.audit import record
from campaigns.ledger.models import (
    CANCELLED,
    DELIVERED,
    FAILED_FINAL,
    SKIPPED,
    Action,
    MemberEvent,
    Person,
    ProviderEvent,
)

PROVIDER = "sendgrid"
KEY_ARG = "relance_key"
# States an event may not change: the action is over (or never went out).
_FINAL = (FAILED_FINAL, CANCELLED, SKIPPED)
# SendGrid drops these for good: the address itself is the problem.
_DEAD_ADDRESS_DROPS = ("bounced address", "invalid")
_ADDRESS = re.compile(r"[^\s<>\"'@,;:]+@[^\s<>\"',;:]+")


def _when(event: dict[str, Any], now: datetime) -> datetime:
    ts = event.get("timestamp")
    try:
        return datetime.fromtimestamp(int(ts), UTC) if ts is not None else now
    except (TypeError, ValueError, OverflowError, OSError):
        return now


def _redact(text: Any) -> str:
    """A provider's reason, with any address blanked out (bounce texts quote them)."""
    return _ADDRESS.sub("<address>", str(text or ""))[:300]


def _keep_once(session: Session, event_id: str, kind: str, ref: str, now: datetime) -> bool:
    """Store the event unless its id is known; True if it is new."""
    dialect = session.get_bind().dialect.name
    ins: Any = (
        postgresql.insert(ProviderEvent)
        if dialect == "postgresql"
        else sqlite.insert(ProviderEvent)
    )
    stmt = (
        ins.values(
            provider=PROVIDER, event_id=event_id, kind=kind, ref=ref, received_at=now, detail={}
        )
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(ProviderEvent.id)
    )
    return session.execute(stmt).first() is not None


def _opened_before(session: Session, key: str) -> bool:
    return (
        session.exec(
            select(ProviderEvent.id).where(
                ProviderEvent.provider == PROVIDER,
                ProviderEvent.kind == "open",
                ProviderEvent.ref == key,
            )
        ).first()
        is not None
    )


def _note(session: Session, a: Action, kind: str, at: datetime, **detail: Any) -> None:
    """A dated, readable line for `relance why`."""
    session.add(
        MemberEvent(
            member_id=a.member_id,
            on=paris_today(at),
            kind=kind,
            detail={"step": a.step, "attempt": a.attempt, **detail},
        )
    )


def _invalidate_email(session: Session, a: Action, why: str, now: datetime) -> None:
    session.execute(update(Person).where(col(Person.id) == a.person_id).values(email_invalid=True))
    record(
        session=session,
        actor=PROVIDER,
        action="email_invalid",
        target=f"person:{a.person_id}",
        detail={"reason": why, "action": a.key},
        now=now,
    )


def _apply(session: Session, a: Action, event: dict[str, Any], at: datetime, now: datetime) -> str:
    """Apply one new event to its action; returns the outcome counted."""
    kind = str(event.get("event"))
    if kind == "delivered":
        if a.state in _FINAL or a.state == DELIVERED:
            return "ignored_late"
        a.state, a.delivered_at, a.updated_at = DELIVERED, at, now
        a.sent_at, a.done_on = a.sent_at or at, a.done_on or paris_today(at)
        _note(session, a, "email_delivered", at)
        return "delivered"
    if kind == "bounce" and str(event.get("type") or "bounce") == "bounce":
        reason = _redact(event.get("reason"))
        _invalidate_email(session, a, "hard_bounce", now)
        if a.state in _FINAL:
            return "ignored_late"
        a.state, a.reason, a.error, a.updated_at = FAILED_FINAL, Reason.HARD_BOUNCE, reason, now
        status = event.get("status")
        _note(session, a, "email_bounced", at, reason=Reason.HARD_BOUNCE, status=status)
        return "hard_bounce"
    if kind == "bounce":  # type "blocked": refused for now by the receiving server
        if a.state in _FINAL:
            return "ignored_late"
        a.reason, a.error, a.updated_at = Reason.BLOCKED, _redact(event.get("reason")), now
        _note(session, a, "email_blocked", at, reason=Reason.BLOCKED, status=event.get("status"))
        return "blocked"
    if kind == "dropped":
        why = f"dropped: {_redact(event.get('reason'))}"
        if str(event.get("reason") or "").lower() in _DEAD_ADDRESS_DROPS:
            _invalidate_email(session, a, why, now)
        if a.state in _FINAL:
            return "ignored_late"
        a.state, a.reason, a.updated_at = FAILED_FINAL, why, now
        _note(session, a, "email_dropped", at, reason=why)
        return "dropped"
    if kind == "open":
        _note(session, a, "email_opened", at)
        return "opened"
    return kind if kind in ("processed", "deferred") else "recorded"


def apply_events(*, session: Session, events: list[Any], now: datetime) -> dict[str, int]:
    """Apply a webhook batch; counts per outcome, duplicates and unknown keys included."""
    counts: dict[str, int] = defaultdict(int)
    keys = {
        str(e[KEY_ARG]) for e in events if isinstance(e, dict) and isinstance(e.get(KEY_ARG), str)
    }
    actions = (
        {a.key: a for a in session.exec(select(Action).where(col(Action.key).in_(keys)))}
        if keys
        else {}
    )
    for event in events:
        if not isinstance(event, dict) or not event.get("sg_event_id") or not event.get("event"):
            counts["malformed"] += 1
            continue
        a = actions.get(str(event.get(KEY_ARG)))
        if a is None:
            counts["unknown"] += 1  # not ours (another sender on the account) or purged
            continue
        kind = str(event["event"])[:32]
        opened_before = kind == "open" and _opened_before(session, a.key)
        if not _keep_once(session, str(event["sg_event_id"])[:128], kind, a.key, now):
            counts["duplicate"] += 1
            continue
        if opened_before:
            counts["opened_again"] += 1
            continue
        counts[_apply(session, a, event, _when(event, now), now)] += 1
    session.flush()
    return dict(counts)
