"""Working days, public holidays and contact hours, per département."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from campaigns.definition.reasons import Reason

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# holidays.France subdivisions: Moselle and Alsace keep Good Friday and 26 December.
_SUBDIVISION = {
    "57": "57",
    "67": "6AE",
    "68": "6AE",
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "976": "976",
}

_TIMEZONE = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "976": "Indian/Mayotte",
}


def subdivision(departement: str) -> str | None:
    """The `holidays.France` subdivision of a département, if it has its own holidays."""
    return _SUBDIVISION.get(departement)


def timezone(departement: str) -> ZoneInfo:
    """The time zone people of a département live in."""
    return ZoneInfo(_TIMEZONE.get(departement, "Europe/Paris"))


@lru_cache(maxsize=256)
def _holidays(subdiv: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", subdiv=subdiv, years=year).keys())


def public_holiday(day: date, departement: str) -> bool:
    """Whether the day is a public holiday in the département."""
    return day in _holidays(subdivision(departement), day.year)


def is_working_day(day: date, departement: str) -> bool:
    """Monday to Friday and not a public holiday of the département."""
    return day.weekday() < 5 and not public_holiday(day, departement)


def add_working_days(day: date, n: int, departement: str) -> date:
    """The n-th working day after `day` (n = 0: `day` itself if working, else the next one)."""
    current = day
    if n == 0:
        while not is_working_day(current, departement):
            current += timedelta(days=1)
        return current
    remaining = n
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current, departement):
            remaining -= 1
    return current


def within_contact_hours(
    moment: datetime,
    departement: str,
    *,
    days: Sequence[str] = _WEEKDAYS[:5],
    start: time = time(8, 30),
    end: time = time(17, 0),
    public_holidays: bool = True,
) -> str | None:
    """None when the person may be called at `moment` (aware), else why not."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local = moment.astimezone(timezone(departement))
    if _WEEKDAYS[local.weekday()] not in days:
        return Reason.OUTSIDE_CONTACT_DAYS
    if public_holidays and public_holiday(local.date(), departement):
        return Reason.PUBLIC_HOLIDAY
    if not (start <= local.time().replace(tzinfo=None) < end):
        return Reason.OUTSIDE_CONTACT_HOURS
    return None
