"""Time helpers: every stored datetime is aware and in UTC; "today" is the Paris date."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def now() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


# The older name, kept so existing importers need not change.
utcnow = now


def paris_today(at: datetime | None = None) -> date:
    """The Paris date of `at` (now when None): the platform's calendar day.

    A naive `at` is UTC: the ledger stores UTC, and SQLite hands it back without a zone.
    """
    moment = now() if at is None else at if at.tzinfo else at.replace(tzinfo=UTC)
    return moment.astimezone(PARIS).date()


def paris_moment(day: date, at: time) -> datetime:
    """A Paris wall-clock moment on a day, aware."""
    return datetime.combine(day, at, tzinfo=PARIS)
