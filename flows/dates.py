"""The platform's calendar day is the Paris one."""

from __future__ import annotations

from datetime import date, datetime

from campaigns.clock import PARIS


def paris_today() -> date:
    """Today in Paris."""
    return datetime.now(PARIS).date()
