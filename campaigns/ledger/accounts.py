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
    check_role(role, echelon)
    if phone_line and not E164.match(phone_line):
        raise AccountError("--phone-line attend un numéro E.164, par exemple +33140000000")
    check_password(password)
    if not username.strip():
        raise AccountError("le nom du compte est vide")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise AccountError(f"le compte {username!r} existe déjà")
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


def check_role(role: str, echelon: str | None) -> None:
    """A known role; an échelon lead's échelon."""
    if role not in ROLES:
        raise AccountError(f"rôle inconnu {role!r} (--role) : l'un de {', '.join(ROLES)}")
    if role == "echelon_lead" and not echelon:
        raise AccountError("un responsable d'échelon (echelon_lead) a besoin de --echelon")


def check_password(password: str) -> None:
    """At least 12 characters."""
    if len(password) < 12:
        raise AccountError("le mot de passe doit compter au moins 12 caractères")


def find_user(*, session: Session, username: str) -> User:
    """The account of this name, or AccountError."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise AccountError(f"aucun compte {username!r} (voir `relance users list`)")
    return user


def set_password(*, user: User, password: str) -> None:
    """A new password; the lock-out and the failed attempts are cleared."""
    check_password(password)
    user.password_hash = _hasher.hash(password)
    user.failed_logins, user.locked_until = 0, None


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
