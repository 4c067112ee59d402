"""Console accounts as use cases: create, list, disable, reset a password, change a role.

Each one writes its audit event (never a password, nor its hash). A disabled account is
refused at its next request: the console checks `active` on every page.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from campaigns.clock import utcnow
from campaigns.definition.reasons import Reason
from campaigns.ledger.accounts import (
    AccountError,
    check_role,
    create_user,
    find_user,
    set_password,
)
from campaigns.ledger.audit import record
from campaigns.ledger.models import User
from campaigns.ledger.sessions import end_all

__all__ = [
    "AccountError",
    "add_user",
    "change_password",
    "disable_user",
    "list_users",
    "reset_password",
    "set_role",
]


def add_user(
    *,
    session: Session,
    actor: str,
    username: str,
    password: str,
    role: str,
    echelon: str | None = None,
    display_name: str | None = None,
    phone_line: str | None = None,
    now: datetime | None = None,
) -> User:
    """Create an account."""
    user = create_user(
        session=session,
        username=username,
        password=password,
        role=role,
        echelon=echelon,
        display_name=display_name,
        phone_line=phone_line,
        now=now,
    )
    record(
        session=session,
        actor=actor,
        action="create_user",
        target=f"account/{username}",
        detail={"role": role, "echelon": echelon},
        now=now,
    )
    return user


def list_users(*, session: Session, actor: str, now: datetime | None = None) -> list[User]:
    """Every account, by name (who looked is audited)."""
    users = list(session.exec(select(User).order_by(col(User.username))))
    record(
        session=session,
        actor=actor,
        action="list_users",
        target="account",
        detail={"count": len(users)},
        now=now,
    )
    return users


def disable_user(
    *, session: Session, actor: str, username: str, now: datetime | None = None
) -> bool:
    """Close an account (it stays, for the history); False if it was already closed."""
    user = find_user(session=session, username=username)
    if not user.active:
        return False
    user.active = False
    session.add(user)
    record(
        session=session,
        actor=actor,
        action="disable_user",
        target=f"account/{username}",
        now=now,
    )
    return True


def _new_password(*, session: Session, user: User, password: str, now: datetime | None) -> int:
    """Set the password and end the account's open sessions: a saved cookie opens nothing."""
    set_password(user=user, password=password)
    session.add(user)
    return end_all(
        session=session, user_id=user.id or 0, now=now or utcnow(), reason=Reason.PASSWORD_CHANGED
    )


def reset_password(
    *, session: Session, actor: str, username: str, password: str, now: datetime | None = None
) -> User:
    """Give an account a new password; its lock-out is lifted and its sessions end."""
    user = find_user(session=session, username=username)
    ended = _new_password(session=session, user=user, password=password, now=now)
    record(
        session=session,
        actor=actor,
        action="reset_password",
        target=f"account/{username}",
        detail={"sessions_ended": ended},
        now=now,
    )
    return user


def change_password(
    *, session: Session, actor: str, username: str, password: str, now: datetime | None = None
) -> int:
    """A user's own new password: every session of the account ends; how many ended."""
    user = find_user(session=session, username=username)
    ended = _new_password(session=session, user=user, password=password, now=now)
    record(
        session=session,
        actor=actor,
        action="password_changed",
        target=f"account/{username}",
        detail={"sessions_ended": ended},
        now=now,
    )
    return ended


def set_role(
    *,
    session: Session,
    actor: str,
    username: str,
    role: str,
    echelon: str | None = None,
    now: datetime | None = None,
) -> User:
    """Change an account's role (an échelon lead's échelon with it)."""
    check_role(role, echelon)
    user = find_user(session=session, username=username)
    before = {"role": user.role, "echelon": user.echelon}
    user.role = role
    user.echelon = echelon if role == "echelon_lead" else None
    if role in ("adviser", "supervisor"):
        user.platform = user.platform or "pfs"
    session.add(user)
    record(
        session=session,
        actor=actor,
        action="set_role",
        target=f"account/{username}",
        detail={"before": before, "after": {"role": role, "echelon": user.echelon}},
        now=now,
    )
    return user
