"""The one contact policy: may this person be contacted on this channel now, and why not."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from campaigns.calendar import within_contact_hours
from campaigns.clock import PARIS
from campaigns.definition import ContactHours

# Reason codes, with the words users see.
REASON_TEXTS = {
    "deceased": "la personne est décédée",
    "enrolled": "la personne est déjà inscrite au programme",
    "opposed_all": "la personne s'oppose à tout contact",
    "opposed_channel": "la personne s'oppose à ce canal",
    "pressure_calls": "trop d'appels récents (toutes campagnes)",
    "pressure_contacts": "trop de contacts récents (toutes campagnes)",
    "attempts_exhausted": "nombre maximal de tentatives atteint",
    "no_phone": "pas de numéro de téléphone valide",
    "no_email": "pas d'adresse électronique valide",
    "no_address": "pas d'adresse postale valide",
    "no_compte_ameli": "pas de compte ameli",
    "outside_contact_hours": "hors des heures d'appel",
    "outside_contact_days": "jour sans appel",
    "public_holiday": "jour férié dans le département",
}


@dataclass(frozen=True)
class Pressure:
    """Limits on contacts across every campaign (from settings)."""

    max_calls: int = 1
    calls_days: int = 14
    max_contacts: int = 3
    contacts_days: int = 30


@dataclass(frozen=True)
class PastContact:
    """A contact already made (any campaign): a reached or attempted call, a message, a letter."""

    on: date
    channel: str
    campaign_id: str


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about a person, read from the ledger."""

    departement: str
    deceased: bool = False
    enrolled: bool = False
    opposed: frozenset[str] = frozenset()
    phone_ok: bool = True
    email_ok: bool = True
    address_ok: bool = True
    compte_ameli: bool = True
    attempts_made: int = 0
    past: Sequence[PastContact] = ()


@dataclass(frozen=True)
class Decision:
    """The answer, with every reason that forbids the contact (empty when allowed)."""

    allowed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def explanation(self) -> str:
        if self.allowed:
            return "contact autorisé"
        return "; ".join(REASON_TEXTS.get(r, r) for r in self.reasons)


def _recent(past: Iterable[PastContact], today: date, days: int, channel: str | None) -> int:
    since = today - timedelta(days=days)
    return sum(
        1 for p in past if since < p.on <= today and (channel is None or p.channel == channel)
    )


def decide(
    *,
    facts: Facts,
    channel: str,
    now: datetime,
    pressure: Pressure = Pressure(),
    hours: ContactHours | None = None,
    max_attempts: int | None = None,
) -> Decision:
    """Check every rule for one contact; the reasons say all that blocks it, in a fixed order."""
    today = now.astimezone(PARIS).date()
    reasons: list[str] = []
    if facts.deceased:
        reasons.append("deceased")
    if facts.enrolled:
        reasons.append("enrolled")
    if "all" in facts.opposed:
        reasons.append("opposed_all")
    elif channel in facts.opposed:
        reasons.append("opposed_channel")
    needs = {
        "phone": ("phone_ok", "no_phone"),
        "email": ("email_ok", "no_email"),
        "letter": ("address_ok", "no_address"),
        "mailbox": ("compte_ameli", "no_compte_ameli"),
    }
    if channel in needs and not getattr(facts, needs[channel][0]):
        reasons.append(needs[channel][1])
    if max_attempts is not None and facts.attempts_made >= max_attempts:
        reasons.append("attempts_exhausted")
    if channel == "phone" and _recent(facts.past, today, pressure.calls_days, "phone") >= (
        pressure.max_calls
    ):
        reasons.append("pressure_calls")
    if _recent(facts.past, today, pressure.contacts_days, None) >= pressure.max_contacts:
        reasons.append("pressure_contacts")
    if channel == "phone" and hours is not None:
        why = within_contact_hours(
            now,
            facts.departement,
            days=hours.days,
            start=hours.start,
            end=hours.end,
            public_holidays=hours.public_holidays,
        )
        if why:
            reasons.append(why)
    return Decision(allowed=not reasons, reasons=tuple(reasons))
