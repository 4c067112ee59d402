"""The shape of identifiers: what a NIR, a phone number or an e-mail looks like in a key cell."""

from __future__ import annotations

import duckdb
import pytest

from targeting.identifiers import CANDIDATE, SEPARATORS, SHAPES, key_problem, kind_of

TABLE = [
    # NIRs: 15 and 13 characters, grouped or not, Corsica.
    ("185057800608436", "nir"),
    ("1850578006084", "nir"),
    ("1 85 05 78 006 084 36", "nir"),
    ("2 90 12 2A 123 456 78", "nir"),
    ("290122b123456", "nir"),
    ("1.85.05.78.006.084-36", "nir"),
    # Phones: French national and international shapes, E.164.
    ("0612345678", "phone"),
    ("06 12 34 56 78", "phone"),
    ("06.12.34.56.78", "phone"),
    ("+33612345678", "phone"),
    ("+33 6 12 34 56 78", "phone"),
    ("+33 (0)6 12 34 56 78", "phone"),
    ("0033612345678", "phone"),
    ("+442071838750", "phone"),
    ("+1 (415) 555-2671", "phone"),
    # E-mails.
    ("jeanne.martin@example.fr", "email"),
    (" j@x ", "email"),
    # Pseudonymised keys and birth ranks: not identifiers.
    ("8F3A2C91D04B7E65", None),
    ("PSA000001", None),
    ("A", None),
    ("1", None),
    ("12", None),
    ("", None),
    (None, None),
    ("12345678901234", None),  # 14 digits: neither a NIR nor a phone
    ("0034282847542313", None),  # a hexadecimal key made of digits only (synth, 1 M people)
    ("612345678", None),  # a phone read as a number (the range check of ben_rng_gem refuses it)
    ("1850578006084365", None),  # 16 digits
]


@pytest.mark.parametrize(("value", "kind"), TABLE)
def test_kind_of(value: str | None, kind: str | None) -> None:
    assert kind_of(value) == kind


@pytest.mark.parametrize(("value", "kind"), [(v, k) for v, k in TABLE if v is not None])
def test_duckdb_reads_the_same_shapes(value: str, kind: str | None) -> None:
    compact = f"regexp_replace(?, '{SEPARATORS}', '', 'g')"
    candidate = f"(contains(?, '@') OR regexp_full_match(?, '(?i){CANDIDATE}'))"
    found = [
        k
        for k, pattern in SHAPES.items()
        if duckdb.execute(
            f"SELECT {candidate} AND regexp_full_match({compact}, '(?i)(?:{pattern})')",
            [value, value, value],
        ).fetchone()[0]  # type: ignore[index]
    ]
    assert found[:1] == ([kind] if kind else [])


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("ben_nir_psa", "185057800608436", "ressemble à un NIR"),
        ("ben_nir_psa", "a@b.fr", "ressemble à une adresse e-mail"),
        ("ben_nir_psa", "8F3A2C91D04B7E65", None),
        ("ben_nir_psa", " ", "valeur vide"),
        ("ben_rng_gem", "0612345678", "ressemble à un numéro de téléphone"),
        ("ben_rng_gem", "612345678", "rang de naissance hors de 1 à 99"),
        ("ben_rng_gem", "0", "rang de naissance hors de 1 à 99"),
        ("ben_rng_gem", "x", "n'est pas un nombre entier"),
        ("ben_rng_gem", "2", None),
        ("ben_rng_gem", 1, None),
    ],
)
def test_key_problem(column: str, value: object, why: str | None) -> None:
    assert key_problem(column, value) == why
