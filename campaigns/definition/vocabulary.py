"""The channels a campaign step uses, and what an opposition may name.

Here, not in the ledger: a channel is part of what a campaign is (each step names one), and
the ledger, the policy and the planner all read it from this layer.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """A way of reaching a person; the value is what the ledger and the definitions hold."""

    PHONE = "phone"
    MAILBOX = "mailbox"
    EMAIL = "email"
    LETTER = "letter"


# An opposition names one channel or every contact.
ALL_CHANNELS = "all"
OPPOSITION_CANALS: tuple[str, ...] = (ALL_CHANNELS, *Channel)
