"""Console accounts as use cases: a password change ends every session of the account."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from campaigns.clock import utcnow
from campaigns.ledger.accounts import AccountError, set_password
from campaigns.ledger.audit import record
from campaigns.ledger.models import User
from campaigns.ledger.sessions import end_all


def change_password(
    *, session: Session, actor: str, username: str, password: str, now: datetime | None = None
) -> int:
    """Set a new password and end the account's open sessions (a saved cookie opens nothing
    any more); audited without the password. Returns how many sessions were ended."""
    now = now or utcnow()
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise AccountError(f"compte inconnu : {username!r}")
    set_password(user=user, password=password)
    ended = end_all(session=session, user_id=user.id or 0, now=now, reason="password_changed")
    record(
        session=session,
        actor=actor,
        action="password_changed",
        target=f"account/{username}",
        detail={"sessions_ended": ended},
        now=now,
    )
    return ended
