"""The contact policy on small inline cases."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from campaigns.definition.model import ContactHours
from campaigns.policy.decision import Facts, PastContact, Pressure, decide, pressure_from
from campaigns.settings import Settings

PARIS = ZoneInfo("Europe/Paris")
THU = datetime(2026, 4, 16, 10, 0, tzinfo=PARIS)  # a working Thursday morning
HOURS = ContactHours()


def past(*items: tuple[str, str], campaign: str = "x", step: str = "s") -> tuple[PastContact, ...]:
    return tuple(
        PastContact(on=date.fromisoformat(d), channel=c, campaign_id=campaign, step=step)
        for d, c in items
    )


@pytest.mark.parametrize(
    ("facts", "channel", "now", "reasons"),
    [
        (Facts(departement="91"), "phone", THU, ()),
        (Facts(departement="91", deceased=True), "letter", THU, ("deceased",)),
        (Facts(departement="91", enrolled=True), "mailbox", THU, ("enrolled",)),
        (Facts(departement="91", opposed=frozenset({"all"})), "letter", THU, ("opposed_all",)),
        (Facts(departement="91", opposed=frozenset({"phone"})), "phone", THU, ("opposed_phone",)),
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
    assert (d.allowed, d.reasons) == (not reasons, reasons)
    assert (d.until is not None) == any(r.startswith("pressure") for r in reasons)


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


def test_pressure_from_reads_the_settings() -> None:
    """The limits come from RELANCE_PRESSURE_* through the policy, not the settings module."""
    settings = Settings(pressure_max_calls=2, pressure_calls_days=7, pressure_max_contacts=5)
    assert pressure_from(settings) == Pressure(
        max_calls=2, calls_days=7, max_contacts=5, contacts_days=30
    )


def test_precedence_deceased_opposition_pressure_hours_attempts() -> None:
    """Every rule that blocks is listed, in precedence order; the first is the one recorded."""
    everything = Facts(
        departement="974",
        deceased=True,
        opposed=frozenset({"all", "phone"}),
        attempts_made=3,
        past=past(("2026-04-18", "phone")),
    )
    # Sunday: 2026-04-19 is no calling day in La Réunion.
    sunday = datetime(2026, 4, 19, 10, 0, tzinfo=PARIS)
    d = decide(facts=everything, channel="phone", now=sunday, hours=HOURS, max_attempts=3)
    assert d.reasons == (
        "deceased",
        "opposed_all",
        "pressure_calls",
        "outside_contact_days",
        "attempts_exhausted",
    )
    assert d.reason == "deceased" and not d.temporary
    alive = Facts(
        departement="974",
        opposed=frozenset({"phone"}),
        attempts_made=3,
        past=past(("2026-04-18", "phone")),
    )
    d = decide(facts=alive, channel="phone", now=sunday, hours=HOURS, max_attempts=3)
    assert d.reason == "opposed_phone"
    d = decide(
        facts=Facts(departement="974", attempts_made=3, past=past(("2026-04-18", "phone"))),
        channel="phone",
        now=sunday,
        hours=HOURS,
        max_attempts=3,
    )
    assert d.reasons == ("pressure_calls", "outside_contact_days", "attempts_exhausted")
    d = decide(
        facts=Facts(departement="974", attempts_made=3),
        channel="phone",
        now=sunday,
        hours=HOURS,
        max_attempts=3,
    )
    assert d.reasons == ("outside_contact_days", "attempts_exhausted")


def test_a_reunion_holiday_blocks_calls_there_only() -> None:
    # 20 December: abolition of slavery, a public holiday in La Réunion only (a Monday in 2027).
    moment = datetime(2027, 12, 20, 7, 0, tzinfo=PARIS)  # 10:00 in La Réunion
    assert decide(
        facts=Facts(departement="974"), channel="phone", now=moment, hours=HOURS
    ).reasons == ("public_holiday",)
    at_ten_paris = datetime(2027, 12, 20, 10, 0, tzinfo=PARIS)
    assert decide(
        facts=Facts(departement="91"), channel="phone", now=at_ten_paris, hours=HOURS
    ).allowed


def test_pressure_defers_until_the_window_frees() -> None:
    facts = Facts(departement="91", past=past(("2026-04-15", "phone")))
    d = decide(facts=facts, channel="phone", now=THU)
    assert d.reasons == ("pressure_calls",) and d.temporary
    assert d.until == date(2026, 4, 29)  # 15 April + 14 days
    assert decide(facts=facts, channel="phone", now=datetime(2026, 4, 29, 10, tzinfo=PARIS)).allowed
    assert not decide(
        facts=facts, channel="phone", now=datetime(2026, 4, 28, 10, tzinfo=PARIS)
    ).allowed
    # Three contacts in 30 days: free when the oldest of the three leaves the window.
    three = Facts(
        departement="91",
        past=past(("2026-04-10", "letter"), ("2026-04-01", "mailbox"), ("2026-03-20", "letter")),
    )
    d = decide(facts=three, channel="mailbox", now=THU)
    assert d.reasons == ("pressure_contacts",) and d.until == date(2026, 4, 19)


def test_a_steps_own_attempts_do_not_count_against_pressure() -> None:
    """A callback after a reached call is left to the attempt cap; other steps count."""
    own = Facts(departement="91", past=past(("2026-04-15", "phone"), campaign="c", step="call"))
    assert decide(facts=own, channel="phone", now=THU, campaign="c", step="call").allowed
    assert not decide(facts=own, channel="phone", now=THU, campaign="c", step="call2").allowed
    assert not decide(facts=own, channel="phone", now=THU, campaign="other", step="call").allowed


def test_pressure_and_hours_can_be_left_out() -> None:
    facts = Facts(departement="91", past=past(("2026-04-15", "phone")))
    sunday = datetime(2026, 4, 19, 10, 0, tzinfo=PARIS)
    assert decide(facts=facts, channel="phone", now=sunday, pressure=None).allowed
    assert decide(
        facts=Facts(departement="91", deceased=True), channel="phone", now=sunday, pressure=None
    ).reasons == ("deceased",)
