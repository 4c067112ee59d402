"""Small hand-built populations for service tests."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from stdnum.fr import nir as nir_check

GAPS = ("gap_renal", "gap_dental", "gap_fundus")


def valid_nir(i: int, sex: int = 1) -> str:
    """A valid 15-character NIR for person i."""
    body = f"{sex}{60 + i % 30:02d}{1 + i % 12:02d}91{i % 1000:03d}{i % 997 + 1:03d}"
    return body + nir_check.calc_check_digits(body)


def population(
    n: int, *, anchor: date, start: int = 0, **overrides: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Targeting rows (all eligible) and contact rows for n people."""
    targets, people = [], []
    for i in range(start, start + n):
        key = f"PSA{i:06d}"
        row: dict[str, Any] = {
            "ben_nir_psa": key,
            "ben_rng_gem": 1,
            "eligible": True,
            "priority": i % 3 == 0,
            "gap_renal": i % 3 == 0,
            "gap_dental": i % 3 == 0 or i % 2 == 0,
            "gap_fundus": i % 3 == 0,
            "ald_end_date": anchor,
            "echelon": "91",
            "reasons": "",
        }
        row.update({k: v for k, v in overrides.items() if k in row})
        targets.append(row)
        people.append(
            {
                "ben_nir_psa": key,
                "ben_rng_gem": 1,
                "nir": valid_nir(i),
                "civilite": "M.",
                "nom": f"NOM{i}",
                "prenom": f"Prenom{i}",
                "adresse_l1": f"M. Prenom{i} NOM{i}",
                "adresse_l2": None,
                "adresse_l3": None,
                "adresse_l4": f"{i} RUE DES LILAS",
                "adresse_l5": None,
                "adresse_l6": "91000 EVRY-COURCOURONNES",
                "telephone": overrides.get("telephone", f"+3361234{i:04d}"),
                "email": overrides.get("email", f"p{i}@example.org"),
                "compte_ameli": overrides.get("compte_ameli", True),
                "echelon": "91",
                "caisse": "911",
                "ben_sex_cod": 1,
                "ben_nai_ann": "1960",
                "ben_nai_moi": "05",
                "ben_res_dpt": "91",
            }
        )
    return pd.DataFrame(targets), pd.DataFrame(people)
