"""The sophia ALD 8 rule on a small hand-built extract: every edge case, one person each."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.targeting.baseline_pandas import run_baseline
from campaigns.definition.catalog import load_campaign
from targeting.engine import run_targeting
from tests.extracts import D, Extract

RULE = load_campaign("sophia-ald8").definition.targeting
N1, N2, N3 = date(2025, 6, 10), date(2024, 6, 10), date(2023, 6, 10)
RENAL, HBA1C, FUNDUS, OTHER_CCAM = "0592", "1577", "BGQP140", "DEQP003"

# psa -> (person kwargs, expected reasons)
ELIGIBILITY: dict[str, tuple[dict[str, Any], str]] = {
    "OK": ({}, ""),
    "ALIVE_SENTINEL": ({"ben": {"ben_dcd_dte": date(1600, 1, 1)}}, ""),
    "DEAD": ({"ben": {"ben_dcd_dte": date(2026, 1, 5)}}, "deceased"),
    "DIES_LATER": ({"ben": {"ben_dcd_dte": date(2026, 5, 1)}}, ""),
    "AGE_18_TODAY": ({"ben": {"ben_nai_ann": "2008", "ben_nai_moi": "03"}}, ""),
    "AGE_17": ({"ben": {"ben_nai_ann": "2008", "ben_nai_moi": "04"}}, "under_age"),
    "BIRTH_UNKNOWN": ({"ben": {"ben_nai_ann": "1600"}}, "birth_date_unknown"),
    "NUM_8_NO_CODE": ({"ald": [{"med_mtf_cod": None}]}, ""),
    "WRONG_NUM_E11": ({"ald": [{"imb_ald_num": None, "med_mtf_cod": "E112"}]}, ""),
    "WRONG_NUM_E10": ({"ald": [{"imb_ald_num": 99, "med_mtf_cod": "E10"}]}, ""),
    "OTHER_ALD": ({"ald": [{"imb_ald_num": 5, "med_mtf_cod": "I50"}]}, "no_ald_period"),
    "ETM_12": ({"ald": [{"imb_etm_nat": 12}]}, "no_ald_period"),
    "ETM_43": ({"ald": [{"imb_etm_nat": 43}]}, ""),
    "ETM_45": ({"ald": [{"imb_etm_nat": 45}]}, ""),
    "STARTS_AFTER_D": ({"ald": [{"imb_ald_dtd": D + timedelta(days=1)}]}, "no_ald_period"),
    "ENDS_ON_D": ({"ald": [{"imb_ald_dtf": D}]}, "renewal_outside_horizon"),
    "ENDS_D_PLUS_1": ({"ald": [{"imb_ald_dtf": D + timedelta(days=1)}]}, ""),
    "ENDS_D_PLUS_90": ({"ald": [{"imb_ald_dtf": D + timedelta(days=90)}]}, ""),
    "ENDS_D_PLUS_91": (
        {"ald": [{"imb_ald_dtf": D + timedelta(days=91)}]},
        "renewal_outside_horizon",
    ),
    "OPEN_ENDED": (
        {"ald": [{}, {"imb_ald_dtd": date(2010, 1, 1), "imb_ald_dtf": date(1600, 1, 1)}]},
        "ald_open_ended",
    ),
    "ALREADY_RENEWED": (
        {"ald": [{}, {"imb_ald_dtd": date(2026, 1, 1), "imb_ald_dtf": date(2031, 1, 1)}]},
        "renewal_outside_horizon",
    ),
    "MISFILED_LATER_END": (
        {"ald": [{"imb_ald_dtf": date(2027, 1, 1)}, {"imb_etm_nat": 11}]},
        "renewal_outside_horizon",
    ),
    "NO_MTT": ({"mtt": []}, "no_medecin_traitant"),
    "MTT_ENDED": ({"mtt": [{"mtt_fin_dte": date(2026, 3, 1)}]}, "no_medecin_traitant"),
    "MTT_ENDS_ON_D": ({"mtt": [{"mtt_fin_dte": D}]}, ""),
    "MTT_FUTURE": ({"mtt": [{"mtt_dep_dte": date(2026, 3, 3)}]}, "no_medecin_traitant"),
    "MTT_CHANGED": (
        {"mtt": [{"mtt_fin_dte": date(2020, 1, 1)}, {"mtt_dep_dte": date(2020, 1, 2)}]},
        "",
    ),
    "NO_CONTACT": ({"no_contact": True}, "no_contact_record"),
    "ENROLLED": ({}, "already_enrolled"),
    "ENROLS_LATER": ({}, ""),
    "OPPOSED_ALL": ({}, "opposed"),
    "OPPOSED_PHONE_ONLY": ({}, ""),
    "OPPOSES_LATER": ({}, ""),
    "MANY": (
        {"ben": {"ben_dcd_dte": date(2025, 1, 1)}, "mtt": [], "no_contact": True},
        "deceased;no_medecin_traitant;no_contact_record",
    ),
}

# psa -> (care lines, expected (renal, dental, fundus) gaps); every one is eligible
GAPS: dict[str, tuple[list[dict[str, Any]], tuple[bool, bool, bool]]] = {
    "G_NONE": (
        [
            {"on": N1, "specialty": 38, "lab": [HBA1C, RENAL]},
            {"on": N1, "specialty": 19},
            {"on": N2, "specialty": 15, "ccam": [FUNDUS]},
        ],
        (False, False, False),
    ),
    "G_ALL": ([], (True, True, True)),
    "G_RENAL_IN_N2": ([{"on": N2, "lab": [RENAL]}], (True, True, True)),
    "G_RENAL_THIS_YEAR": ([{"on": date(2026, 1, 20), "lab": [RENAL]}], (True, True, True)),
    "G_HBA1C_ONLY": ([{"on": N1, "lab": [HBA1C]}], (True, True, True)),
    "G_RENAL_ON_N1_BOUNDS": (
        [{"on": date(2025, 1, 1), "lab": ["1133"]}, {"on": date(2025, 12, 31), "specialty": 54}],
        (False, False, True),
    ),
    "G_ODF_DENTIST": ([{"on": N1, "specialty": 36}], (True, False, True)),
    "G_GP_ONLY": ([{"on": N1, "specialty": 1}], (True, True, True)),
    "G_FUNDUS_N1": ([{"on": N1, "ccam": ["BZQK001"]}], (True, True, False)),
    "G_FUNDUS_N3": ([{"on": N3, "ccam": [FUNDUS]}], (True, True, True)),
    "G_OTHER_CCAM": ([{"on": N1, "ccam": [OTHER_CCAM]}], (True, True, True)),
    **{
        f"G_KEY_{k.upper()}": ([{"on": N1, "lab": [RENAL], "break_key": k}], (True, True, True))
        for k in ("dct_ord_num", "flx_dis_dtd", "org_cle_num", "prs_ord_num", "rem_typ_aff")
    },
}


def build() -> Extract:
    x = Extract()
    for psa, (kw, _) in ELIGIBILITY.items():
        x.person(psa, **kw)
    x.add("sophia_adhesions", ben_nir_psa="ENROLLED", ben_rng_gem=1, date_adhesion=D)
    x.add(
        "sophia_adhesions",
        ben_nir_psa="ENROLS_LATER",
        ben_rng_gem=1,
        date_adhesion=D + timedelta(days=1),
    )
    x.add("oppositions", ben_nir_psa="OPPOSED_ALL", ben_rng_gem=1, date_opposition=D, canal="all")
    x.add(
        "oppositions",
        ben_nir_psa="OPPOSED_PHONE_ONLY",
        ben_rng_gem=1,
        date_opposition=D,
        canal="phone",
    )
    x.add(
        "oppositions",
        ben_nir_psa="OPPOSES_LATER",
        ben_rng_gem=1,
        date_opposition=D + timedelta(days=1),
        canal="all",
    )
    for psa, (lines, _) in GAPS.items():
        x.person(psa)
        for line in lines:
            x.care(psa, **line)
    # Twins share the pseudonym; the second one is dead, the first one is not affected.
    x.person("TWINS", 1).person("TWINS", 2, ben={"ben_dcd_dte": date(2025, 1, 1)})
    x.care("TWINS", N1, rng=2, specialty=19)
    return x


@pytest.fixture(scope="module", params=["csv", "parquet"])
def extract(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build().write(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def result(extract: Path) -> pd.DataFrame:
    t = run_targeting(rule=RULE, extract=extract, as_of=D, include_ineligible=True).to_pandas()
    return t.set_index(["ben_nir_psa", "ben_rng_gem"])


@pytest.mark.parametrize("psa", list(ELIGIBILITY))
def test_eligibility_edge_cases(result: pd.DataFrame, psa: str) -> None:
    row = result.loc[(psa, 1)]
    assert row["reasons"] == ELIGIBILITY[psa][1]
    assert bool(row["eligible"]) == (ELIGIBILITY[psa][1] == "")


@pytest.mark.parametrize("psa", list(GAPS))
def test_care_gaps_through_the_nine_join_keys(result: pd.DataFrame, psa: str) -> None:
    row = result.loc[(psa, 1)]
    gaps = (bool(row["gap_renal"]), bool(row["gap_dental"]), bool(row["gap_fundus"]))
    assert row["eligible"] and gaps == GAPS[psa][1]
    assert bool(row["priority"]) == all(gaps)


def test_twins_are_two_people(result: pd.DataFrame) -> None:
    first, second = result.loc[("TWINS", 1)], result.loc[("TWINS", 2)]
    assert (first["reasons"], second["reasons"]) == ("", "deceased")
    assert bool(first["gap_dental"]) and not bool(second["gap_dental"])


def test_renewal_date_and_echelon(result: pd.DataFrame) -> None:
    assert result.loc[("ENDS_D_PLUS_90", 1)]["ald_end_date"] == D + timedelta(days=90)
    assert result.loc[("OK", 1)]["echelon"] == "93"
    assert pd.isna(result.loc[("OTHER_ALD", 1)]["ald_end_date"])


def test_only_eligible_by_default_sorted(extract: Path, result: pd.DataFrame) -> None:
    t = run_targeting(rule=RULE, extract=extract, as_of=D).to_pandas()
    assert t["eligible"].all()
    assert len(t) == int(result["eligible"].sum())
    assert list(t["ben_nir_psa"]) == sorted(t["ben_nir_psa"])


def _records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        tuple(None if pd.isna(v) else (v.date() if isinstance(v, pd.Timestamp) else v) for v in r)
        for r in frame.reset_index().itertuples(index=False)
    ]


def test_the_pandas_baseline_agrees_row_for_row(extract: Path, result: pd.DataFrame) -> None:
    base = run_baseline(rule=RULE, extract=extract, as_of=D)
    assert list(base.columns) == ["ben_nir_psa", "ben_rng_gem", *result.columns]
    assert _records(base.set_index(["ben_nir_psa", "ben_rng_gem"])) == _records(result)
