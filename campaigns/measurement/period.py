"""The period a lead's figures cover: two Paris dates, a preset, or since the launch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# The presets, as the page's select offers them (value, French label).
PRESETS = (
    ("lancement", "depuis le lancement"),
    ("mois", "les 30 derniers jours"),
    ("semaine", "les 7 derniers jours"),
    ("dates", "entre deux dates"),
)
_DAYS = {"semaine": 7, "mois": 30}


class PeriodError(ValueError):
    """A period that cannot be read (the message says which field and why, in French)."""


@dataclass(frozen=True)
class Period:
    """Inclusive Paris dates; `since` None means since the launch."""

    since: date | None
    until: date
    preset: str = "lancement"

    def label(self) -> str:
        """The period in words, dates JJ/MM/AAAA."""
        end = self.until.strftime("%d/%m/%Y")
        if self.since is None:
            return f"depuis le lancement, jusqu'au {end}"
        return f"du {self.since.strftime('%d/%m/%Y')} au {end}"

    def query(self) -> str:
        """The URL query that gives this period back (to share the page)."""
        if self.preset in _DAYS or self.preset == "lancement":
            return f"periode={self.preset}"
        since = self.since.isoformat() if self.since else ""
        return f"periode=dates&du={since}&au={self.until.isoformat()}"


def _day(text: str, field: str) -> date:
    text = text.strip()
    for parse in (date.fromisoformat, _french):
        try:
            return parse(text)
        except ValueError:
            continue
    raise PeriodError(f"« {field} » : {text!r} n'est pas une date (JJ/MM/AAAA ou AAAA-MM-JJ)")


def _french(text: str) -> date:
    day, month, year = text.split("/")
    return date(int(year), int(month), int(day))


def parse_period(
    *, preset: str | None, since: str | None, until: str | None, today: date
) -> Period:
    """The period the URL asks for; a PeriodError names the bad field, in French."""
    preset = (preset or "").strip() or ("dates" if (since or until) else "lancement")
    if preset == "lancement":
        return Period(since=None, until=today, preset=preset)
    if preset in _DAYS:
        return Period(since=today - timedelta(days=_DAYS[preset] - 1), until=today, preset=preset)
    if preset != "dates":
        known = ", ".join(p for p, _ in PRESETS)
        raise PeriodError(f"« période » : {preset!r} inconnue (valeurs possibles : {known})")
    start = _day(since, "du") if since and since.strip() else None
    end = _day(until, "au") if until and until.strip() else today
    if end > today:
        raise PeriodError(f"« au » : le {end.strftime('%d/%m/%Y')} est dans le futur")
    if start is not None and start > end:
        raise PeriodError(
            f"« du » : le {start.strftime('%d/%m/%Y')} est après le {end.strftime('%d/%m/%Y')}"
        )
    return Period(since=start, until=end, preset=preset)
