"""Console sessions held server-side: opened at login, ended by logout or a password change.

The browser keeps only a random id (signed in its cookie); the row is keyed by the id's
SHA-256, so the table alone opens no session. A session lives `hours` from its issue (as the
signed cookies did), unless it is ended first; an ended session opens nothing any more.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from campaigns.ledger.models import ConsoleSession, User

# last_seen is written at most this often (not on every page: claims stay cheap).
TOUCH_EVERY = timedelta(seconds=60)


def key_of(sid: str) -> str:
    """The row key of a session id (its SHA-256, hex)."""
    return hashlib.sha256(sid.encode()).hexdigest()


def new_id() -> str:
    """A fresh, unguessable session id."""
    return secrets.token_urlsafe(32)


def open_session(*, session: Session, user: User, now: datetime) -> str:
    """A new session for this user; returns the id to put in the cookie."""
    sid = new_id()
    session.add(
        ConsoleSession(
            id=key_of(sid),
            user_id=user.id or 0,
            username=user.username,
            issued_at=now,
            last_seen=now,
        )
    )
    session.flush()
    return sid


def live(row: ConsoleSession | None, now: datetime, hours: int) -> bool:
    """Whether this session still opens pages (not ended, not expired)."""
    return (
        row is not None
        and row.ended_at is None
        and now - _aware(row.issued_at, now) <= timedelta(hours=hours)
    )


def _aware(at: datetime, like: datetime) -> datetime:
    return at if at.tzinfo or like.tzinfo is None else at.replace(tzinfo=like.tzinfo)


def touch(*, session: Session, row: ConsoleSession, now: datetime) -> None:
    """Note the session as seen now (at most once a minute)."""
    if now - _aware(row.last_seen, now) >= TOUCH_EVERY:
        session.execute(
            update(ConsoleSession).where(col(ConsoleSession.id) == row.id).values(last_seen=now)
        )


def end_session(*, session: Session, sid: str, now: datetime, reason: str = "logout") -> None:
    """End one session (logout)."""
    session.execute(
        update(ConsoleSession)
        .where(col(ConsoleSession.id) == key_of(sid), col(ConsoleSession.ended_at).is_(None))
        .values(ended_at=now, end_reason=reason)
    )


def end_all(*, session: Session, user_id: int, now: datetime, reason: str) -> int:
    """End every open session of a user (password change, account closed); how many."""
    res = session.execute(
        update(ConsoleSession)
        .where(col(ConsoleSession.user_id) == user_id, col(ConsoleSession.ended_at).is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    return int(getattr(res, "rowcount", 0) or 0)


def save_data(*, session: Session, sid: str, data: dict[str, Any]) -> None:
    """Keep what the pages store between requests in a live session (ended ones are left)."""
    session.execute(
        update(ConsoleSession)
        .where(col(ConsoleSession.id) == key_of(sid), col(ConsoleSession.ended_at).is_(None))
        .values(data=data)
    )


def load(*, session: Session, sid: str) -> ConsoleSession | None:
    """The session row of this id, detached (read once per request), or None."""
    row = session.get(ConsoleSession, key_of(sid))
    if row is not None:
        session.expunge(row)
    return row
