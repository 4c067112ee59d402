"""Synthetic SNDS-shaped extracts: every table of an extract, for N insured, seeded.

Generation is vectorised (numpy for draws, pyarrow for strings) and chunked, so 10 M insured
fit in a few GB; the same seed gives the same bytes. Rates below are the documented
assumptions; they aim at the magnitudes of the domain README (4.5 % of adults in ALD 8,
~1/3 of eligible people in all three care gaps, 25 % already in sophia), and for the flu and
médecin traitant campaigns: ~20 % aged 65 or more, half of them vaccinated each season (shots
from mid-October, up to the extract date), ~6 % of people in ALD without a médecin traitant,
GP lines (01, 22, 23) and metformin for diabetics.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from relance_fs import private_dir
from targeting.files import touch_private
from targeting.schema import JOIN_KEYS, TABLES

CHUNK = 250_000
_ARROW = {"str": pa.string(), "int": pa.int64(), "date": pa.date32(), "bool": pa.bool_()}
_EPOCH = np.datetime64("1970-01-01", "D")
SENTINEL_DAYS = int((np.datetime64("1600-01-01", "D") - _EPOCH).astype(int))

# Insured per département of the DRSM Île-de-France (millions, rounded), weighting residence.
DEPARTEMENT_WEIGHTS = {
    "75": 2.1,
    "77": 1.4,
    "78": 1.45,
    "91": 1.3,
    "92": 1.6,
    "93": 1.65,
    "94": 1.4,
    "95": 1.25,
}
TOWNS: dict[str, tuple[tuple[str, str], ...]] = {
    "75": tuple((f"750{i:02d}", "PARIS") for i in range(1, 21)),
    "77": (
        ("77000", "MELUN"),
        ("77100", "MEAUX"),
        ("77300", "FONTAINEBLEAU"),
        ("77500", "CHELLES"),
        ("77200", "TORCY"),
    ),
    "78": (
        ("78000", "VERSAILLES"),
        ("78100", "SAINT-GERMAIN-EN-LAYE"),
        ("78200", "MANTES-LA-JOLIE"),
        ("78300", "POISSY"),
        ("78500", "SARTROUVILLE"),
    ),
    "91": (
        ("91000", "EVRY-COURCOURONNES"),
        ("91100", "CORBEIL-ESSONNES"),
        ("91300", "MASSY"),
        ("91120", "PALAISEAU"),
        ("91200", "ATHIS-MONS"),
    ),
    "92": (
        ("92000", "NANTERRE"),
        ("92100", "BOULOGNE-BILLANCOURT"),
        ("92130", "ISSY-LES-MOULINEAUX"),
        ("92200", "NEUILLY-SUR-SEINE"),
        ("92400", "COURBEVOIE"),
    ),
    "93": (
        ("93000", "BOBIGNY"),
        ("93100", "MONTREUIL"),
        ("93200", "SAINT-DENIS"),
        ("93600", "AULNAY-SOUS-BOIS"),
        ("93300", "AUBERVILLIERS"),
    ),
    "94": (
        ("94000", "CRETEIL"),
        ("94200", "IVRY-SUR-SEINE"),
        ("94300", "VINCENNES"),
        ("94400", "VITRY-SUR-SEINE"),
        ("94100", "SAINT-MAUR-DES-FOSSES"),
    ),
    "95": (
        ("95000", "CERGY"),
        ("95100", "ARGENTEUIL"),
        ("95200", "SARCELLES"),
        ("95300", "PONTOISE"),
        ("95400", "VILLIERS-LE-BEL"),
    ),
}
# Share of the population per 5-year age band, 0–4 … 95–99 (INSEE pyramid, rounded).
AGE_BANDS = np.array(
    [
        *(5.5, 6.0, 6.3, 6.2, 5.7, 5.6, 6.0, 6.3, 6.2, 6.6),
        *(6.7, 6.6, 6.3, 5.9, 5.5, 3.9, 3.0, 2.1, 1.0, 0.3),
    ]
)
# Probability of diabetes in ALD by age (upper bound of band, years) — ~4.5 % of adults.
DIABETES_BY_AGE = ((18, 0.002), (40, 0.006), (50, 0.02), (60, 0.045), (70, 0.08), (80, 0.10))
DIABETES_OLDEST = 0.095
P_DISENGAGED = 0.42  # a latent trait: disengaged diabetics skip most check-ups
RENAL_CODES = ("0592", "0593", "0407", "0627", "1133")
OTHER_LAB_CODES = ("1577", "0996", "1104", "0552")
FUNDUS_CODES = ("BGQP002", "BGQP003", "BGQP006", "BGQP007", "BGQP140", "BZQK001")
OTHER_CCAM = ("DEQP003", "ZCQM001", "BLQP010", "BJMA001")
DENTIST_CODES = (19, 19, 19, 19, 36, 53, 54)
GENERIC_SPECIALTIES = (1, 1, 1, 1, 1, 0, 0, 0, 22, 6, 9, 4, 7, 32)
OTHER_ALD = ((30, "C50"), (5, "I50"), (13, "I25"), (23, "F20"), (3, "I70"), (15, "G30"))
OPPOSITION_CANALS = ("all", "all", "all", "all", "all", "phone", "phone", "mailbox", "email")
# Drugs (CIP13, ATC). Influenza vaccines are ATC J07BB*; a pneumococcal vaccine (J07AL02)
# sits beside them, a vaccine that must not count as a flu shot. The CIP13 are 34009 +
# 7 digits + an EAN-13 check digit: real in shape, not real products.
FLU_VACCINES = (
    ("340093011245", "J07BB02"),
    ("340093016725", "J07BB02"),
    ("340093024682", "J07BB02"),
    ("340093026901", "J07BB03"),
)
METFORMIN = (("340093222118", "A10BA02"), ("340093222130", "A10BA02"))
OTHER_DRUGS = (
    ("340093320513", "N02BE01"),  # paracetamol
    ("340093569875", "J01CA04"),  # amoxicillin
    ("340093578409", "C10AA05"),  # atorvastatin
    ("340093440811", "J07AL02"),  # pneumococcal vaccine
)
GP_SPECIALTIES = (1, 1, 1, 1, 22, 23)  # general practitioners
PHARMACIST = 50
P_FLU_65 = 0.5  # share of people aged 65 or more vaccinated each season
P_FLU_ALD = 0.3  # adults under 65 with an ALD in force
P_FLU_OTHER = 0.03
P_METFORMIN = 0.8  # diabetics on metformin
# Médecin traitant declared for diabetics and others in ALD (~6 % without one), other adults,
# children.
P_MTT_ALD, P_MTT_ADULT, P_MTT_CHILD = 0.94, 0.88, 0.6
# Lines of a chunk are numbered from CHUNK * 1000 apart; the new lines start past the old.
_PHA_LINE_OFFSET = 200_000_000
EMAIL_DOMAINS = ("gmail.com", "orange.fr", "free.fr", "laposte.net", "sfr.fr", "hotmail.fr")


@dataclass(frozen=True)
class _Pools:
    male: pa.Array
    female: pa.Array
    last: pa.Array
    male_ascii: pa.Array
    female_ascii: pa.Array
    last_ascii: pa.Array
    street_prefix: pa.Array


def _ascii_upper(s: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c)
    ).upper()


def _pools() -> _Pools:
    from faker.providers.address.fr_FR import Provider as Address
    from faker.providers.person.fr_FR import Provider as Person

    male, female = sorted(set(Person.first_names_male)), sorted(set(Person.first_names_female))
    last = sorted(set(Person.last_names))
    return _Pools(
        male=pa.array(male),
        female=pa.array(female),
        last=pa.array([x.upper() for x in last]),
        male_ascii=pa.array([_ascii_upper(x) for x in male]),
        female_ascii=pa.array([_ascii_upper(x) for x in female]),
        last_ascii=pa.array([_ascii_upper(x) for x in last]),
        street_prefix=pa.array(sorted({_ascii_upper(x) for x in Address.street_prefixes})),
    )


def _days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _pad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width=width, padding="0")


def _cat(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays and scalars (null if any part is null)."""
    return pc.binary_join_element_wise(*parts, "")


def _hex_ids(values: np.ndarray) -> pa.Array:
    """16 upper-case hex digits per uint64, without a Python loop."""
    nibbles = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    digits = np.empty((len(values), 16), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = nibbles >> 4, nibbles & 15
    table = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
    raw = table[digits].tobytes()
    return pa.Array.from_buffers(
        pa.string(),
        len(values),
        [
            None,
            pa.py_buffer(np.arange(0, 16 * len(values) + 1, 16, dtype=np.int32)),
            pa.py_buffer(raw),
        ],
    )


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype("int32"), type=pa.int32(), mask=mask).cast(pa.date32())


def _nir(
    rng: np.random.Generator, sex: np.ndarray, year: np.ndarray, month: np.ndarray, dpt: list[str]
) -> pa.Array:
    """Valid 15-character NIRs: sex, year, month, birth département, commune, order, key."""
    n = len(sex)
    born_here = rng.random(n) < 0.75
    birth_dpt = np.where(
        born_here,
        np.array(dpt, dtype=object),
        rng.choice(np.array(["13", "59", "69", "2A", "2B", "33", "99"], dtype=object), n),
    )
    dnum = np.array(
        [19 if d == "2A" else 18 if d == "2B" else int(d) for d in birth_dpt], dtype=np.int64
    )
    yy, commune, order = year % 100, rng.integers(1, 990, n), rng.integers(1, 999, n)
    number = (
        np.where(sex == 2, 2, 1).astype(np.int64) * 10**12
        + yy * 10**10
        + month * 10**8
        + dnum * 10**6
        + commune * 10**3
        + order
    )
    key = 97 - number % 97
    return _cat(
        pa.array(np.where(sex == 2, "2", "1")),
        _pad(yy, 2),
        _pad(month, 2),
        pa.array(birth_dpt.astype(str)),
        _pad(commune, 3),
        _pad(order, 3),
        _pad(key, 2),
    )


def _diabetes_probability(age: np.ndarray) -> np.ndarray:
    p = np.full(len(age), DIABETES_OLDEST)
    for upper, prob in reversed(DIABETES_BY_AGE):
        p = np.where(age < upper, prob, p)
    return p


class _Chunk:
    """One chunk of insured and every row that belongs to them."""

    def __init__(self, *, index: int, start: int, size: int, seed: int, as_of: date) -> None:
        self.rng = np.random.default_rng([seed, index])
        self.start, self.n, self.as_of, self.seed = start, size, as_of, seed
        self.index = index
        # The draws of the tables added later (GP and pharmacy lines, the médecin traitant
        # of people in ALD): a stream of their own keeps the older tables as they were.
        self.rng2 = np.random.default_rng([seed, index, 15])
        self.d = _days(as_of)


def _people(c: _Chunk, pools: _Pools) -> dict[str, Any]:
    rng, n = c.rng, c.n
    idx = np.arange(c.start, c.start + n, dtype=np.uint64)
    mix = np.uint64((c.seed * 0x9E3779B1 + 0x7F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        psa_num = idx * np.uint64(0x9E3779B97F4A7C15) + mix
    twin = rng.random(n) < 0.006
    twin[0] = False
    twin[1:] &= ~twin[:-1]
    src = np.arange(n)
    src[twin] -= 1  # a twin copies the previous person's pseudonym, birth and residence
    psa_num = psa_num[src]
    rng_gem = np.where(twin, 2, 1).astype(np.int64)

    band = rng.choice(len(AGE_BANDS), n, p=AGE_BANDS / AGE_BANDS.sum())
    age_days = (band * 5 + rng.random(n) * 5) * 365.25
    birth = (c.d - age_days).astype(np.int64)[src]
    birth_dt = birth.astype("datetime64[D]")
    year = birth_dt.astype("datetime64[Y]").astype(np.int64) + 1970
    month = birth_dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
    age = (c.d - birth) / 365.25
    unknown_birth = rng.random(n) < 0.002
    sex = rng.choice(np.array([1, 2]), n, p=[0.48, 0.52])
    sex_cod = np.where(rng.random(n) < 0.001, 0, sex)
    dpts = np.array(list(DEPARTEMENT_WEIGHTS))
    w = np.array(list(DEPARTEMENT_WEIGHTS.values()))
    dpt = dpts[rng.choice(len(dpts), n, p=w / w.sum())][src]
    deceased = rng.random(n) < np.where(age >= 75, 0.03, 0.003)
    death = c.d - rng.integers(1, 1000, n)
    alive_sentinel = rng.random(n) < 0.5
    dcd = np.where(deceased, death, SENTINEL_DAYS)
    dcd_mask = ~deceased & ~alive_sentinel
    ann = np.where(unknown_birth, "1600", year.astype(str))
    moi = _pad(np.where(unknown_birth, 0, month), 2)
    return {
        "psa": _hex_ids(psa_num),
        "rng_gem": rng_gem,
        "sex": sex,
        "sex_cod": sex_cod,
        "year": year,
        "month": month,
        "age": age,
        "dpt": dpt,
        "deceased": deceased,
        "ir_ben_r": {
            "ben_sex_cod": sex_cod,
            "ben_nai_ann": pa.array(ann),
            "ben_nai_moi": moi,
            "ben_res_dpt": pa.array(dpt),
            "ben_dcd_dte": _dates(dcd, dcd_mask),
        },
    }


def _contacts(c: _Chunk, p: dict[str, Any], pools: _Pools) -> tuple[np.ndarray, dict[str, Any]]:
    rng, n = c.rng, c.n
    has = rng.random(n) < 0.993
    female = p["sex"] == 2
    fi = rng.integers(0, len(pools.female), n)
    mi = rng.integers(0, len(pools.male), n)
    li = rng.integers(0, len(pools.last), n)
    prenom = pc.if_else(pa.array(female), pools.female.take(fi), pools.male.take(mi))
    prenom_a = pc.if_else(pa.array(female), pools.female_ascii.take(fi), pools.male_ascii.take(mi))
    nom = pools.last.take(li)
    nom_a = pools.last_ascii.take(li)
    civ_long = pa.array(np.where(female, "MADAME ", "MONSIEUR "))
    l1 = pc.utf8_slice_codeunits(_cat(civ_long, prenom_a, " ", nom_a), 0, 38)
    l2 = pc.if_else(
        pa.array(rng.random(n) < 0.15), _cat("APPARTEMENT ", _pad(rng.integers(1, 400, n), 1)), None
    )
    l3 = pc.if_else(
        pa.array(rng.random(n) < 0.10),
        _cat("RESIDENCE LES ", pools.last_ascii.take(rng.integers(0, len(pools.last), n))),
        None,
    )
    street_name = pc.if_else(
        pa.array(rng.random(n) < 0.5),
        pools.last_ascii.take(rng.integers(0, len(pools.last), n)),
        _cat("DE ", pools.last_ascii.take(rng.integers(0, len(pools.last), n))),
    )
    l4 = pc.utf8_slice_codeunits(
        _cat(
            _pad(rng.integers(1, 180, n), 1),
            " ",
            pools.street_prefix.take(rng.integers(0, len(pools.street_prefix), n)),
            " ",
            street_name,
        ),
        0,
        38,
    )
    l5 = pc.if_else(
        pa.array(rng.random(n) < 0.03), _cat("BP ", _pad(rng.integers(1, 999, n), 1)), None
    )
    town_pick = rng.random(n)
    l6 = np.empty(n, dtype=object)
    for dpt, towns in TOWNS.items():
        here = p["dpt"] == dpt
        labels = np.array([f"{pc_} {t}" for pc_, t in towns], dtype=object)
        l6[here] = labels[(town_pick[here] * len(towns)).astype(int)]
    mobile = rng.random(n) < 0.8
    phone_num = _cat(
        pa.array(np.where(mobile, np.where(rng.random(n) < 0.7, "+336", "+337"), "+331")),
        _pad(rng.integers(0, 10**8, n), 8),
    )
    has_phone = rng.random(n) < 0.75
    compte = rng.random(n) < 0.60
    has_email = np.where(compte, rng.random(n) < 0.9, rng.random(n) < 0.2)
    email = _cat(
        pc.utf8_lower(pc.replace_substring(prenom_a, " ", "-")),
        ".",
        pc.utf8_lower(pc.replace_substring(nom_a, " ", "-")),
        _pad(rng.integers(1, 99, n), 2),
        "@",
        pa.array(np.array(EMAIL_DOMAINS)[rng.integers(0, len(EMAIL_DOMAINS), n)]),
    )
    nir = _nir(rng, p["sex"], p["year"], p["month"], list(p["dpt"]))
    caisse = pa.array(np.char.add(p["dpt"].astype(str), "1"))
    cols = {
        "nir": nir,
        "civilite": pa.array(np.where(female, "Mme", "M.")),
        "nom": nom,
        "prenom": prenom,
        "adresse_l1": l1,
        "adresse_l2": l2,
        "adresse_l3": l3,
        "adresse_l4": l4,
        "adresse_l5": l5,
        "adresse_l6": pa.array(l6, type=pa.string()),
        "telephone": pc.if_else(pa.array(has_phone), phone_num, None),
        "email": pc.if_else(pa.array(has_email), email, None),
        "compte_ameli": compte,
        "echelon": pa.array(p["dpt"]),
        "caisse": caisse,
    }
    return has, cols


def _ald(c: _Chunk, p: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any], np.ndarray, np.ndarray]:
    """ALD periods: diabetes for ~4.5 % of adults, other ALDs, misfiled rows."""
    rng, n, d = c.rng, c.n, c.d
    age = p["age"]
    diabetic = rng.random(n) < _diabetes_probability(age)
    rows: list[dict[str, np.ndarray]] = []
    who = np.flatnonzero(diabetic)
    k = len(who)
    # Current 5-year period; renewal dates spread evenly, some lapsed, a few open-ended.
    end = d + rng.integers(-200, 1626, k)
    start = end - 1826 + 1
    open_ended = rng.random(k) < 0.02
    e10 = rng.random(k) < 0.1
    code = np.char.add(np.where(e10, "E10", "E11"), rng.integers(0, 10, k).astype(str))
    num_wrong = rng.random(k)
    num = np.where(num_wrong < 0.06, -1, np.where(num_wrong < 0.12, 99, 8))  # -1 = null
    code = np.where((num == 8) & (rng.random(k) < 0.03), "", code)
    etm = rng.choice(np.array([41, 43, 45]), k, p=[0.9, 0.05, 0.05])
    rows.append(
        {
            "who": who,
            "num": num,
            "dtd": start,
            "dtf": np.where(open_ended, SENTINEL_DAYS, end),
            "etm": etm,
            "code": code,
        }
    )
    prior = rng.random(k) < 0.6
    rows.append(
        {
            "who": who[prior],
            "num": num[prior],
            "dtd": start[prior] - 1826,
            "dtf": start[prior] - 1,
            "etm": etm[prior],
            "code": code[prior],
        }
    )
    # Misfiled: a work-accident / invalidity exoneration coded E11 is not an ALD period.
    mis = rng.random(k) < 0.02
    m = int(mis.sum())
    rows.append(
        {
            "who": who[mis],
            "num": np.full(m, 8),
            "dtd": d - rng.integers(30, 900, m),
            "dtf": d + rng.integers(1, 90, m),
            "etm": rng.choice(np.array([11, 12, 13]), m),
            "code": np.full(m, "E119"),
        }
    )
    other_mis = np.flatnonzero(~diabetic & (age >= 18) & (rng.random(n) < 0.002))
    rows.append(
        {
            "who": other_mis,
            "num": np.full(len(other_mis), -1),
            "dtd": d - rng.integers(30, 900, len(other_mis)),
            "dtf": d + rng.integers(1, 90, len(other_mis)),
            "etm": rng.choice(np.array([11, 12, 13]), len(other_mis)),
            "code": np.full(len(other_mis), "E110"),
        }
    )
    other = np.flatnonzero((age >= 18) & (rng.random(n) < 0.12))
    o = len(other)
    pick = rng.integers(0, len(OTHER_ALD), o)
    o_end = d + rng.integers(-400, 1600, o)
    rows.append(
        {
            "who": other,
            "num": np.array([a for a, _ in OTHER_ALD])[pick],
            "dtd": o_end - 1826,
            "dtf": np.where(rng.random(o) < 0.3, SENTINEL_DAYS, o_end),
            "etm": np.full(o, 41),
            "code": np.char.add(
                np.array([c_ for _, c_ in OTHER_ALD])[pick], rng.integers(0, 10, o).astype(str)
            ),
        }
    )
    allr = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    order = np.lexsort((allr["dtd"], allr["who"]))
    allr = {key: v[order] for key, v in allr.items()}
    cols = {
        "imb_ald_num": pa.array(allr["num"], mask=allr["num"] < 0, type=pa.int64()),
        "imb_ald_dtd": _dates(allr["dtd"]),
        "imb_ald_dtf": _dates(allr["dtf"]),
        "imb_etm_nat": allr["etm"].astype(np.int64),
        "med_mtf_cod": pa.array(allr["code"].astype(str)).cast(pa.string()),
    }
    cols["med_mtf_cod"] = pc.if_else(pc.equal(cols["med_mtf_cod"], ""), None, cols["med_mtf_cod"])
    in_force = (
        np.isin(allr["etm"], (41, 43, 45))
        & (allr["dtd"] <= d)
        & ((allr["dtf"] == SENTINEL_DAYS) | (allr["dtf"] >= d))
    )
    in_ald = np.zeros(n, dtype=bool)
    in_ald[allr["who"][in_force]] = True
    return allr["who"], cols, diabetic, in_ald


def _mtt(
    c: _Chunk, p: dict[str, Any], diabetic: np.ndarray, in_ald: np.ndarray
) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    rng, n, d = c.rng, c.n, c.d
    adult = p["age"] >= 18
    u = rng.random(n)
    p_current = np.where(diabetic, P_MTT_ALD, np.where(adult, P_MTT_ADULT, P_MTT_CHILD))
    current = u < p_current
    ended_only = (u >= p_current) & (u < p_current + 0.05)
    changed = current & (rng.random(n) < 0.04)
    future = ~current & ~ended_only & (rng.random(n) < 0.1)
    parts = []
    who = np.flatnonzero(current)
    parts.append((who, d - rng.integers(30, 4000, len(who)), np.full(len(who), -1)))
    who = np.flatnonzero(ended_only | changed)
    fin = d - rng.integers(4001, 6000, len(who))
    fin = np.where(ended_only[who], d - rng.integers(1, 700, len(who)), fin)
    parts.append((who, fin - rng.integers(300, 3000, len(who)), fin))
    who = np.flatnonzero(future)
    parts.append((who, d + rng.integers(1, 60, len(who)), np.full(len(who), -1)))
    w = np.concatenate([x[0] for x in parts])
    dep = np.concatenate([x[1] for x in parts])
    fin_all = np.concatenate([x[2] for x in parts])
    # People in ALD see their doctor more: about 6 % of them have no declaration in force
    # (drawn from the chunk's second stream, so the draws above and after do not move).
    rng2 = c.rng2
    lacking = np.flatnonzero(in_ald & ~diabetic & ~current)
    got = lacking[rng2.random(len(lacking)) < 1 - (1 - P_MTT_ALD) / (1 - P_MTT_ADULT)]
    current = current.copy()
    current[got] = True
    w = np.concatenate([w, got])
    dep = np.concatenate([dep, d - rng2.integers(30, 4000, len(got))])
    fin_all = np.concatenate([fin_all, np.full(len(got), -1)])
    order = np.lexsort((dep, w))
    cols = {
        "mtt_dep_dte": _dates(dep[order]),
        "mtt_fin_dte": _dates(fin_all[order], fin_all[order] < 0),
    }
    return w[order], cols, current


def _care(
    c: _Chunk, p: dict[str, Any], diabetic: np.ndarray
) -> tuple[tuple[np.ndarray, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Care lines for diabetics and a thin sample of others, with their lab and CCAM rows."""
    rng, n, d = c.rng, c.n, c.d
    sample = ~diabetic & (rng.random(n) < 0.01)
    subj = np.flatnonzero(diabetic | sample)
    s = len(subj)
    is_diab = diabetic[subj]
    disengaged = is_diab & (rng.random(s) < P_DISENGAGED)

    def rate(engaged: float, dis: float, other: float) -> np.ndarray:
        return np.where(disengaged, dis, np.where(is_diab, engaged, other))

    year_n = c.as_of.year
    ev_who, ev_day, ev_kind = [], [], []
    codes: list[tuple[np.ndarray, np.ndarray, int]] = []  # (event index, code, 0 bio / 1 cam)
    n_ev = 0

    def add(who: np.ndarray, lo: int, span: int, kind: int) -> np.ndarray:
        nonlocal n_ev
        ev_who.append(who)
        ev_day.append(lo + (rng.random(len(who)) * span).astype(np.int64))
        ev_kind.append(np.full(len(who), kind))
        ids = np.arange(n_ev, n_ev + len(who))
        n_ev += len(who)
        return ids

    for y in (year_n - 2, year_n - 1, year_n):
        lo = _days(date(y, 1, 1))
        span = min(_days(date(y + 1, 1, 1)), d + 1) - lo
        if span <= 0:
            continue
        frac = span / 365
        generic = rng.poisson(rate(22, 12, 8) * frac)
        add(np.repeat(subj, generic), lo, span, 0)
        renal = (rng.random(s) < rate(0.85, 0.12, 0.3) * min(1.0, frac * 1.5)) * (
            1 + (rng.random(s) < 0.4)
        )
        ids = add(np.repeat(subj, renal), lo, span, 1)
        codes.append((ids, np.array(RENAL_CODES)[rng.integers(0, 5, len(ids))], 0))
        extra = rng.random(len(ids)) < 0.8
        codes.append((ids[extra], np.full(int(extra.sum()), "1577"), 0))
        other_lab = rng.poisson(rate(2.0, 0.6, 0.3) * frac)
        ids = add(np.repeat(subj, other_lab), lo, span, 2)
        codes.append((ids, np.array(OTHER_LAB_CODES)[rng.integers(0, 4, len(ids))], 0))
        dental = (rng.random(s) < rate(0.55, 0.12, 0.4) * min(1.0, frac * 1.5)) * (
            1 + rng.poisson(0.6, s)
        )
        ids = add(np.repeat(subj, dental), lo, span, 3)
        scaling = rng.random(len(ids)) < 0.5
        codes.append((ids[scaling], np.full(int(scaling.sum()), "HBJD001"), 1))
        fundus = rng.random(s) < rate(0.42, 0.06, 0.1) * min(1.0, frac * 1.5)
        ids = add(subj[fundus], lo, span, 4)
        codes.append((ids, np.array(FUNDUS_CODES)[rng.integers(0, 6, len(ids))], 1))
        other_ccam = rng.random(s) < 0.25
        ids = add(subj[other_ccam], lo, span, 5)
        codes.append((ids, np.array(OTHER_CCAM)[rng.integers(0, 4, len(ids))], 1))

    who = np.concatenate(ev_who)
    day = np.concatenate(ev_day)
    kind = np.concatenate(ev_kind)
    order = np.lexsort((kind, day, who))
    pos = np.empty(n_ev, dtype=np.int64)
    pos[order] = np.arange(n_ev)
    who, day, kind = who[order], day[order], kind[order]
    line = np.int64(c.start) * 1000 + np.arange(n_ev, dtype=np.int64)
    spe = np.array(GENERIC_SPECIALTIES)[rng.integers(0, len(GENERIC_SPECIALTIES), n_ev)]
    spe = np.where((kind == 1) | (kind == 2), 38, spe)
    spe = np.where(kind == 3, np.array(DENTIST_CODES)[rng.integers(0, 7, n_ev)], spe)
    spe = np.where(kind == 4, 15, spe)
    nat = np.array([1111, 1112, 1321, 1331, 1111, 1211])[kind]
    month = day.astype("datetime64[D]").astype("datetime64[M]")
    flx_dis = ((month + 1).astype("datetime64[D]") - _EPOCH).astype(np.int64) + 19
    keys = {
        "dct_ord_num": line % 100_000,
        "flx_dis_dtd": flx_dis,
        "flx_emt_num": line // 100_000,
        "flx_emt_ord": line % 7,
        "flx_emt_typ": np.where(kind <= 2, np.where(kind == 0, 1, 2), 5),
        "flx_trt_dtd": flx_dis - 3,
        "org_cle_num": np.char.add("01", np.char.add(p["dpt"][who].astype(str), "0000")),
        "prs_ord_num": line % 3,
        "rem_typ_aff": line % 2,
    }

    def key_cols(ix: np.ndarray, bump: np.ndarray | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in JOIN_KEYS:
            v = keys[k][ix]
            if k == "prs_ord_num" and bump is not None:
                v = v + bump
            out[k] = (
                _dates(v)
                if k.startswith("flx_") and k.endswith("_dtd")
                else (pa.array(v.astype(str)) if k == "org_cle_num" else v.astype(np.int64))
            )
        return out

    prs = {
        "prs_nat_ref": nat.astype(np.int64),
        "exe_soi_dtd": _dates(day),
        "pse_spe_cod": spe.astype(np.int64),
        **key_cols(np.arange(n_ev)),
    }
    out: list[dict[str, Any]] = []
    for table in (0, 1):
        parts = [(pos[i], code) for i, code, t in codes if t == table]
        at = np.concatenate([x[0] for x in parts])
        code = np.concatenate([x[1] for x in parts])
        bump = np.zeros(len(at), dtype=np.int64)
        if table == 0:
            # Lab rows of lines outside this extract: they match 8 of the 9 keys of a line of
            # a disengaged person. A join on fewer keys would wrongly clear a renal gap.
            dis_lines = np.flatnonzero(disengaged[np.searchsorted(subj, who)] & (kind == 0))
            orphan = dis_lines[rng.random(len(dis_lines)) < 0.01]
            at = np.concatenate([at, orphan])
            code = np.concatenate([code, np.full(len(orphan), "0592")])
            bump = np.concatenate([bump, np.full(len(orphan), 10)])
        o = np.lexsort((code, at))
        cols = key_cols(at[o], bump[o])
        cols["bio_prs_ide" if table == 0 else "cam_prs_ide"] = pa.array(code[o].astype(str))
        out.append(cols)
    return (who, prs), out[0], out[1]


def _enrolments_oppositions(
    c: _Chunk, diabetic: np.ndarray
) -> tuple[tuple[np.ndarray, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]:
    rng, n, d = c.rng, c.n, c.d
    u = rng.random(n)
    enrolled = diabetic & (u < 0.27)
    later = enrolled & (u >= 0.26)  # enrols after the extract date: leaves a running cascade
    when = np.where(later, d + rng.integers(1, 200, n), d - rng.integers(1, 2500, n))
    who_e = np.flatnonzero(enrolled)
    opposed = rng.random(n) < 0.005
    who_o = np.flatnonzero(opposed)
    canal = np.array(OPPOSITION_CANALS)[rng.integers(0, len(OPPOSITION_CANALS), len(who_o))]
    return (
        (who_e, {"date_adhesion": _dates(when[who_e])}),
        (
            who_o,
            {
                "date_opposition": _dates(d - rng.integers(1, 2000, len(who_o))),
                "canal": pa.array(canal.astype(str)),
            },
        ),
    )


def _cip13(stem: str) -> str:
    """A CIP13 from its 12 first digits and its EAN-13 check digit."""
    total = sum(int(ch) * (3 if i % 2 else 1) for i, ch in enumerate(stem))
    return stem + str((10 - total % 10) % 10)


def drug_referential() -> dict[str, list[str]]:
    """ir_pha_r: every drug synth dispenses, with its ATC code."""
    drugs = (*FLU_VACCINES, *METFORMIN, *OTHER_DRUGS)
    return {
        "pha_cip_c13": [_cip13(stem) for stem, _ in drugs],
        "pha_atc_c07": [atc for _, atc in drugs],
    }


def season_start(as_of: date) -> date:
    """The first day of the flu season the date falls in (1 September)."""
    return date(as_of.year if as_of.month >= 9 else as_of.year - 1, 9, 1)


def _flu_days(rng: np.random.Generator, k: int, season: date) -> np.ndarray:
    """Vaccination days of a season: from mid-October, most in the first weeks, to 31 January."""
    launch = _days(date(season.year, 10, 15))
    last = _days(date(season.year + 1, 1, 31))
    day = launch + np.minimum(rng.gamma(1.5, 25.0, k).astype(np.int64), last - launch)
    # A few pharmacies vaccinate from the season start, before the campaign's launch.
    early = rng.random(k) < 0.02
    return np.where(early, _days(season) + rng.integers(0, launch - _days(season), k), day)


def _pharmacy_gp(
    c: _Chunk, p: dict[str, Any], diabetic: np.ndarray, in_ald: np.ndarray, mtt: np.ndarray
) -> tuple[tuple[np.ndarray, dict[str, Any]], dict[str, Any]]:
    """GP care lines of people in ALD, and pharmacy lines (flu shots, metformin, others).

    Drawn from their own stream: the other tables stay as they were without these lines.
    """
    rng, n, d = c.rng2, c.n, c.d
    age, alive = p["age"], ~p["deceased"]
    who_l, day_l, spe_l, cip_l, qsn_l = [], [], [], [], []

    def add(who: np.ndarray, day: np.ndarray, spe: int | np.ndarray, cip: Any, qsn: Any) -> None:
        keep = day <= d  # nothing after the extract date
        k = len(who)
        who_l.append(who[keep])
        day_l.append(day[keep])
        spe_l.append(np.broadcast_to(np.asarray(spe), (k,))[keep])
        cip_l.append(np.broadcast_to(np.asarray(cip, dtype=object), (k,))[keep])
        qsn_l.append(np.broadcast_to(np.asarray(qsn), (k,))[keep])

    # GP lines over two years for people in ALD; without a médecin traitant, fewer visits.
    ald = np.flatnonzero(in_ald & ~diabetic & alive)
    no_mt = ~mtt[ald]
    skip_year = rng.random(len(ald)) < np.where(no_mt, 0.45, 0.12)
    rate = np.where(no_mt, 1.5, 4.5)
    for lo, absent in ((d - 364, skip_year), (d - 729, np.zeros(len(ald), dtype=bool))):
        visits = np.where(absent, 0, rng.poisson(rate))
        who = np.repeat(ald, visits)
        spe = np.array(GP_SPECIALTIES)[rng.integers(0, len(GP_SPECIALTIES), len(who))]
        add(who, lo + rng.integers(0, 365, len(who)), spe, None, 0)

    # Flu shots, this season and the last; the extract date decides how many are dispensed yet.
    flu = [_cip13(stem) for stem, _ in FLU_VACCINES]
    share = np.where(age >= 65, P_FLU_65, np.where(in_ald & (age >= 18), P_FLU_ALD, 0.0))
    share = np.where((share == 0) & (age >= 18), P_FLU_OTHER, share) * alive
    this = season_start(c.as_of)
    for season in (date(this.year - 1, 9, 1), this):
        who = np.flatnonzero(rng.random(n) < share)
        cip = np.array(flu, dtype=object)[rng.integers(0, 3, len(who))]  # J07BB03: children
        add(who, _flu_days(rng, len(who), season), PHARMACIST, cip, 1)

    # Metformin for most diabetics: a box or more every month over the last year.
    met = [_cip13(stem) for stem, _ in METFORMIN]
    takers = np.flatnonzero(diabetic & alive & (rng.random(n) < P_METFORMIN))
    phase = rng.integers(0, 30, len(takers))
    for month in range(13):
        day = d - 364 + phase + 30 * month
        cip = np.array(met, dtype=object)[rng.integers(0, 2, len(takers))]
        add(takers, day, PHARMACIST, cip, rng.integers(1, 4, len(takers)))

    # Other drugs for a thin sample (a pneumococcal shot among them: not a flu shot).
    other = [_cip13(stem) for stem, _ in OTHER_DRUGS]
    some = np.flatnonzero(alive & (rng.random(n) < 0.05))
    cip = np.array(other, dtype=object)[rng.integers(0, len(other), len(some))]
    add(some, d - rng.integers(0, 365, len(some)), PHARMACIST, cip, rng.integers(1, 3, len(some)))

    who, day = np.concatenate(who_l), np.concatenate(day_l)
    spe, cip, qsn = np.concatenate(spe_l), np.concatenate(cip_l), np.concatenate(qsn_l)
    order = np.lexsort((day, who))
    who, day, spe, cip, qsn = who[order], day[order], spe[order], cip[order], qsn[order]
    m = len(who)
    line = np.int64(c.start) * 1000 + _PHA_LINE_OFFSET + np.arange(m, dtype=np.int64)
    month_ = day.astype("datetime64[D]").astype("datetime64[M]")
    flx_dis = ((month_ + 1).astype("datetime64[D]") - _EPOCH).astype(np.int64) + 19
    keys: dict[str, Any] = {
        "dct_ord_num": (line % 100_000).astype(np.int64),
        "flx_dis_dtd": _dates(flx_dis),
        "flx_emt_num": (line // 100_000).astype(np.int64),
        "flx_emt_ord": (line % 7).astype(np.int64),
        "flx_emt_typ": np.where(spe == PHARMACIST, 3, 1).astype(np.int64),
        "flx_trt_dtd": _dates(flx_dis - 3),
        "org_cle_num": pa.array(
            np.char.add("01", np.char.add(p["dpt"][who].astype(str), "0000")).astype(str)
        ),
        "prs_ord_num": (line % 3).astype(np.int64),
        "rem_typ_aff": (line % 2).astype(np.int64),
    }
    pharmacy = spe == PHARMACIST
    prs = {
        # 1111: a GP consultation; 3317: a pharmacy dispensation.
        "prs_nat_ref": np.where(pharmacy, 3317, 1111).astype(np.int64),
        "exe_soi_dtd": _dates(day),
        "pse_spe_cod": spe.astype(np.int64),
        **keys,
    }
    ix = pa.array(np.flatnonzero(pharmacy))
    pha = {k: (v.take(ix) if isinstance(v, pa.Array) else v[pharmacy]) for k, v in keys.items()}
    pha["pha_prs_c13"] = pa.array(cip[pharmacy].astype(str))
    pha["pha_act_qsn"] = qsn[pharmacy].astype(np.int64)
    return (who, prs), pha


def _table(
    name: str, psa: pa.Array | None, rng_gem: np.ndarray | None, cols: dict[str, Any]
) -> pa.Table:
    spec = TABLES[name]
    arrays = []
    for col in spec.columns:
        if col.name == "ben_nir_psa":
            v: Any = psa
        elif col.name == "ben_rng_gem":
            v = rng_gem
        else:
            v = cols[col.name]
        arr = v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)
        arrays.append(arr.cast(_ARROW[col.type]))
    schema = pa.schema(
        [pa.field(c.name, _ARROW[c.type], nullable=c.nullable) for c in spec.columns]
    )
    return pa.Table.from_arrays(arrays, schema=schema)


def _chunk_tables(c: _Chunk, pools: _Pools) -> dict[str, pa.Table]:
    p = _people(c, pools)
    psa, gem = p["psa"], p["rng_gem"]

    def sub(who: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        return psa.take(pa.array(who)), gem[who]

    out = {"ir_ben_r": _table("ir_ben_r", psa, gem, p["ir_ben_r"])}
    who, cols, diabetic, in_ald = _ald(c, p)
    out["ir_imb_r"] = _table("ir_imb_r", *sub(who), cols)
    who, cols, mtt = _mtt(c, p, diabetic, in_ald)
    out["ir_mtt_r"] = _table("ir_mtt_r", *sub(who), cols)
    (who, prs), bio, cam = _care(c, p, diabetic)
    (who_g, prs_g), pha = _pharmacy_gp(c, p, diabetic, in_ald, mtt)
    out["er_prs_f"] = pa.concat_tables(
        [_table("er_prs_f", *sub(who), prs), _table("er_prs_f", *sub(who_g), prs_g)]
    )
    out["er_bio_f"] = _table("er_bio_f", None, None, bio)
    out["er_cam_f"] = _table("er_cam_f", None, None, cam)
    out["er_pha_f"] = _table("er_pha_f", None, None, pha)
    if c.index == 0:  # one referential per extract
        out["ir_pha_r"] = _table("ir_pha_r", None, None, drug_referential())
    has, cols = _contacts(c, p, pools)
    keep = np.flatnonzero(has)
    out["contacts"] = _table(
        "contacts",
        *sub(keep),
        {
            k: (v.take(pa.array(keep)) if isinstance(v, pa.Array) else v[keep])
            for k, v in cols.items()
        },
    )
    (we, ce), (wo, co) = _enrolments_oppositions(c, diabetic)
    out["sophia_adhesions"] = _table("sophia_adhesions", *sub(we), ce)
    out["oppositions"] = _table("oppositions", *sub(wo), co)
    return out


def _check_target(out: Path, people: int, fmt: str) -> Path:
    """The folder to write, once the request is known to make sense (an empty or new folder)."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"unknown format {fmt!r}: use parquet or csv")
    if people <= 0:
        raise ValueError("people must be positive")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder")
    return out


def write_extract(
    *,
    out: Path,
    people: int,
    seed: int,
    as_of: date,
    fmt: str = "parquet",
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write every table of an extract for `people` insured (the folder appears whole or not)."""
    out = _check_target(out, people, fmt)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    private_dir(tmp)
    pools = _pools()
    writers: dict[str, Any] = {}
    counts = dict.fromkeys(TABLES, 0)
    try:
        for index, start in enumerate(range(0, people, CHUNK)):
            size = min(CHUNK, people - start)
            chunk = _Chunk(index=index, start=start, size=size, seed=seed, as_of=as_of)
            for name, table in _chunk_tables(chunk, pools).items():
                if name not in writers:
                    path = tmp / f"{name}.{fmt}"
                    touch_private(path)  # contacts hold NIRs, phones and addresses
                    writers[name] = (
                        pq.ParquetWriter(path, table.schema, compression="zstd")
                        if fmt == "parquet"
                        else pacsv.CSVWriter(path, table.schema)
                    )
                writers[name].write_table(table)
                counts[name] += table.num_rows
            if progress:
                progress(start + size)
        for w in writers.values():
            w.close()
        writers.clear()
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, out)
    except BaseException:
        for w in writers.values():
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
