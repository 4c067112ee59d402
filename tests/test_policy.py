"""The contact policy on small inline cases."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from campaigns.definition import ContactHours
from campaigns.policy import Decision, Facts, PastContact, Pressure, decide

PARIS = ZoneInfo("Europe/Paris")
THU = datetime(2026, 4, 16, 10, 0, tzinfo=PARIS)  # a working Thursday morning
HOURS = ContactHours()


def past(*items: tuple[str, str]) -> tuple[PastContact, ...]:
    return tuple(
        PastContact(on=date.fromisoformat(d), channel=c, campaign_id="x") for d, c in items
    )


@pytest.mark.parametrize(
    ("facts", "channel", "now", "reasons"),
    [
        (Facts(departement="91"), "phone", THU, ()),
        (Facts(departement="91", deceased=True), "letter", THU, ("deceased",)),
        (Facts(departement="91", enrolled=True), "mailbox", THU, ("enrolled",)),
        (Facts(departement="91", opposed=frozenset({"all"})), "letter", THU, ("opposed_all",)),
        (Facts(departement="91", opposed=frozenset({"phone"})), "phone", THU, ("opposed_channel",)),
        (Facts(departement="91", opposed=frozenset({"phone"})), "letter", THU, ()),
        (Facts(departement="91", phone_ok=False), "phone", THU, ("no_phone",)),
        (Facts(departement="91", compte_ameli=False), "mailbox", THU, ("no_compte_ameli",)),
        (Facts(departement="91", attempts_made=3), "phone", THU, ("attempts_exhausted",)),
        # One call in 14 days: a call 13 days ago blocks, 14 days ago does not.
        (
            Facts(departement="91", past=past(("2026-04-03", "phone"))),
            "phone",
            THU,
            ("pressure_calls",),
        ),
        (Facts(departement="91", past=past(("2026-04-02", "phone"))), "phone", THU, ()),
        # A letter does not count against calls, but three contacts in 30 days block all.
        (Facts(departement="91", past=past(("2026-04-10", "letter"))), "phone", THU, ()),
        (
            Facts(
                departement="91",
                past=past(
                    ("2026-04-10", "letter"), ("2026-04-01", "mailbox"), ("2026-03-20", "email")
                ),
            ),
            "letter",
            THU,
            ("pressure_contacts",),
        ),
        (
            Facts(departement="91"),
            "phone",
            datetime(2026, 4, 16, 8, 0, tzinfo=PARIS),
            ("outside_contact_hours",),
        ),
        (
            Facts(departement="91"),
            "phone",
            datetime(2026, 4, 18, 10, 0, tzinfo=PARIS),
            ("outside_contact_days",),
        ),
        # Easter Monday everywhere; Good Friday only in Moselle and Alsace.
        (
            Facts(departement="91"),
            "phone",
            datetime(2026, 4, 6, 10, 0, tzinfo=PARIS),
            ("public_holiday",),
        ),
        (
            Facts(departement="57"),
            "phone",
            datetime(2026, 4, 3, 10, 0, tzinfo=PARIS),
            ("public_holiday",),
        ),
        (Facts(departement="91"), "phone", datetime(2026, 4, 3, 10, 0, tzinfo=PARIS), ()),
        # 10:00 in Paris is 04:00 in Guadeloupe.
        (Facts(departement="971"), "phone", THU, ("outside_contact_hours",)),
        # Letters ignore contact hours; every reason is listed, in order.
        (
            Facts(departement="91", deceased=True, opposed=frozenset({"all"})),
            "letter",
            datetime(2026, 4, 18, 23, 0, tzinfo=PARIS),
            ("deceased", "opposed_all"),
        ),
    ],
)
def test_policy(facts: Facts, channel: str, now: datetime, reasons: tuple[str, ...]) -> None:
    d = decide(facts=facts, channel=channel, now=now, hours=HOURS, max_attempts=3)
    assert d == Decision(allowed=not reasons, reasons=reasons)


def test_explanations_are_words() -> None:
    d = decide(facts=Facts(departement="91", deceased=True), channel="phone", now=THU)
    assert d.explanation == "la personne est décédée"
    assert decide(facts=Facts(departement="91"), channel="letter", now=THU).explanation == (
        "contact autorisé"
    )


def test_pressure_limits_come_from_settings() -> None:
    facts = Facts(departement="91", past=past(("2026-04-10", "phone")))
    assert not decide(facts=facts, channel="phone", now=THU).allowed
    loose = Pressure(max_calls=2)
    assert decide(facts=facts, channel="phone", now=THU, pressure=loose).allowed
