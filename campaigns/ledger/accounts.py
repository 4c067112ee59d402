"""Console accounts: argon2-hashed passwords, roles, scope, lock-out after failed logins."""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlmodel import Session, select

from campaigns.clock import utcnow
from campaigns.ledger.models import ROLES, User
from channels.phone import E164

_hasher = PasswordHasher()
MAX_FAILED = 5
LOCK = timedelta(minutes=15)


class AccountError(ValueError):
    """An account that cannot be created as asked."""


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    echelon: str | None = None,
    platform: str | None = None,
    now: datetime | None = None,
    phone_line: str | None = None,
) -> User:
    """A new account; échelon leads need an échelon, advisers and supervisors a platform."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if role == "echelon_lead" and not echelon:
        raise AccountError("an échelon lead needs --echelon")
    if phone_line and not E164.match(phone_line):
        raise AccountError("--phone-line must be an E.164 number, e.g. +33140000000")
    if len(password) < 12:
        raise AccountError("passwords need at least 12 characters")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise AccountError(f"user {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=_hasher.hash(password),
        role=role,
        echelon=echelon,
        platform=platform or ("pfs" if role in ("adviser", "supervisor") else None),
        created_at=now or utcnow(),
        phone_line=phone_line,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(
    *, session: Session, username: str, password: str, now: datetime | None = None
) -> User | None:
    """The user if the password is right and the account is open; failures count toward a lock."""
    now = now or utcnow()
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None or not user.active:
        _hasher.hash(password)  # same time whether the account exists or not
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except VerificationError:
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED:
            user.locked_until, user.failed_logins = now + LOCK, 0
        return None
    user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def set_password(*, user: User, password: str) -> None:
    """A new password for this account (at least 12 characters); its lock is lifted."""
    if len(password) < 12:
        raise AccountError("passwords need at least 12 characters")
    user.password_hash = _hasher.hash(password)
    user.failed_logins, user.locked_until = 0, None
