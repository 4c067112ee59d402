"""What a cell holding a person's identifier looks like: a NIR, a phone number, an e-mail.

A person key (`ben_nir_psa`, `ben_rng_gem`) is pseudonymised: a value of one of these shapes in
a key column is an identifier in the wrong place, refused before it is stored or shown.
The patterns are RE2-compatible, so DuckDB checks extracts with the very same ones.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["nir", "phone", "email"]

# Removed before matching: people write NIRs and phone numbers in groups.
SEPARATORS = r"[\s.()/_-]"
# What a NIR or a phone number matches as written (their characters and separators only), an
# e-mail having an "@": cheap tests that rule out most keys before they are compacted and matched.
CANDIDATE = r"[0-9ab+\s.()/_-]{8,}"
# Checked in this order on the value without separators (full match, any case); a phone
# number starts with 0 or +, a NIR never does.
SHAPES: dict[Kind, str] = {
    "email": r"[^@]+@.+",
    # French national (0X…), French international (+33 / 0033, "(0)" kept or not), any E.164
    # written with its "+": a bare "00…" run of digits is also what a hexadecimal key can be.
    "phone": r"0[1-9][0-9]{8}|(?:\+|00)330?[1-9][0-9]{8}|\+[1-9][0-9]{6,14}",
    # Sex, year, month, département (2A/2B in Corsica), commune, order; the key is optional.
    "nir": r"[0-9]{5}(?:[0-9]{2}|2[ab])[0-9]{6}(?:[0-9]{2})?",
}
KIND_WORDS: dict[Kind, str] = {
    "nir": "ressemble à un NIR",
    "phone": "ressemble à un numéro de téléphone",
    "email": "ressemble à une adresse e-mail",
}
# Birth rank (rang gémellaire): 1 for most people, 2 and more for twins and further births.
RNG_GEM_MIN, RNG_GEM_MAX = 1, 99

_COMPILED = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in SHAPES.items()]
_SEPARATORS = re.compile(SEPARATORS)
_CANDIDATE = re.compile(CANDIDATE, re.IGNORECASE)


def kind_of(value: object) -> Kind | None:
    """The kind of identifier a value is shaped like, or None."""
    text = "" if value is None else str(value)
    if "@" not in text and not _CANDIDATE.fullmatch(text):
        return None
    compact = _SEPARATORS.sub("", text)
    for kind, pattern in _COMPILED:
        if pattern.fullmatch(compact):
            return kind
    return None


def key_problem(column: str, value: object) -> str | None:
    """Why a person-key cell is refused (never quoting it), or None when it is a key."""
    kind = kind_of(value)
    if kind is not None:
        return KIND_WORDS[kind]
    text = "" if value is None else str(value).strip()
    if not text:
        return "valeur vide"
    if column == "ben_rng_gem":
        if not (text.isascii() and text.isdigit()):
            return "n'est pas un nombre entier"
        if not RNG_GEM_MIN <= int(text) <= RNG_GEM_MAX:
            return f"rang de naissance hors de {RNG_GEM_MIN} à {RNG_GEM_MAX}"
    return None
