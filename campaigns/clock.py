"""Time helpers: every stored datetime is aware and in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def paris_moment(day: date, at: time) -> datetime:
    """A Paris wall-clock moment on a day, aware."""
    return datetime.combine(day, at, tzinfo=PARIS)
