"""Postal addresses as AFNOR NF Z10-011 wants them for a window envelope."""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_LINES = 6
MAX_CHARS = 38
# Last line: a 5-digit postcode, a space, the town in capitals (CEDEX allowed).
_LAST_LINE = re.compile(r"^\d{5} [A-Z0-9' -]+$")


class AddressError(ValueError):
    """An address that cannot be printed as it is, and why."""


def validate_address(lines: Sequence[str]) -> list[str]:
    """The address's non-empty lines, or AddressError naming the first problem."""
    kept = [line.strip() for line in lines if line and line.strip()]
    if len(kept) < 2:
        raise AddressError("an address needs a recipient line and a postcode + town line")
    if len(kept) > MAX_LINES:
        raise AddressError(f"{len(kept)} lines, at most {MAX_LINES}")
    for i, line in enumerate(kept, start=1):
        if len(line) > MAX_CHARS:
            raise AddressError(f"line {i} has {len(line)} characters, at most {MAX_CHARS}")
    if not _LAST_LINE.match(kept[-1]):
        raise AddressError(f"last line {kept[-1]!r} is not '<5-digit postcode> <TOWN IN CAPITALS>'")
    return kept
