"""Postal addresses as AFNOR NF Z10-011 wants them for a window envelope."""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_LINES = 6
MAX_CHARS = 38
# Last line: a 5-digit postcode, a space, the town in capitals (CEDEX allowed).
_LAST_LINE = re.compile(r"^\d{5} [A-Z0-9' -]+$")


class AddressError(ValueError):
    """An address that cannot be printed as it is, and why (in French: it reaches users)."""


def validate_address(lines: Sequence[str]) -> list[str]:
    """The address's non-empty lines, or AddressError naming the first problem."""
    kept = [line.strip() for line in lines if line and line.strip()]
    if len(kept) < 2:
        raise AddressError(
            "adresse incomplète : il faut une ligne destinataire et une ligne code postal + ville"
        )
    if len(kept) > MAX_LINES:
        raise AddressError(f"adresse de {len(kept)} lignes, {MAX_LINES} au plus (NF Z10-011)")
    for i, line in enumerate(kept, start=1):
        if len(line) > MAX_CHARS:
            raise AddressError(
                f"ligne {i} de {len(line)} caractères, {MAX_CHARS} au plus (NF Z10-011)"
            )
    if not _LAST_LINE.match(kept[-1]):
        raise AddressError(
            f"dernière ligne {kept[-1]!r} : il faut "
            "« code postal à 5 chiffres + VILLE EN MAJUSCULES »"
        )
    return kept
