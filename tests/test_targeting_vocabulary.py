"""The campaign vocabulary (issue 15) on hand-built extracts: every new criterion at its
edges, asserted on DuckDB's verdicts, and DuckDB == the pandas oracle == Spark row for row."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from bench.targeting.oracle_pandas import run_oracle
from targeting.engine import run_targeting, table_specs, tables_needed
from targeting.explain import Check, explain_person
from targeting.extract import ExtractError, check_extract
from targeting.rule import TargetingRule
from tests.extracts import D, Extract

SEASON = date(2025, 9, 1)
FLU, HEP, UNKNOWN_CIP = "3400930000001", "3400930000002", "3400930000003"
PROGRAMME = "mt_inscriptions"


def rule(text: str) -> TargetingRule:
    return TargetingRule.model_validate(yaml.safe_load(text))


# Flu-like: 65+ or an ALD in force, not in Paris, not vaccinated since the season start.
FLU_RULE = rule(
    f"""
parameters: {{season_start: {SEASON}}}
criteria:
  - {{kind: alive}}
  - any_of:
      - {{kind: age, min_years: 65}}
      - {{kind: ald_in_force, ald_nums: [8], etm_nat: [41, 43, 45]}}
  - not: {{kind: residence, departements: ["75"]}}
  - kind: care
    id: vaccinated
    label: "vacciné contre la grippe cette saison"
    source: drug
    codes: [J07BB]
    window: {{since: season_start}}
    present: false
  - {{kind: has_contact}}
gaps:
  no_gp_year: {{source: specialty, codes: ["1"], window: {{days: 365}}}}
  no_hba1c_6m: {{source: lab, codes: ["1577"], window: {{months: 6}}}}
priority:
  when: {{kind: age, min_years: 80}}
"""
)

# Birthday-like: 50, 60 or 70 this month, no GP declared, not registered, seen a GP last
# year, and not (a man living in 77).
MT_RULE = rule(
    f"""
criteria:
  - {{kind: age, exact_years: [50, 60, 70]}}
  - {{kind: medecin_traitant, declared: false}}
  - {{kind: not_enrolled, table: {PROGRAMME}, date_column: date_inscription}}
  - kind: care
    id: seen_gp
    source: specialty
    codes: ["1", "22", "23"]
    window: {{years: [-1]}}
  - not:
      all_of:
        - {{kind: sex, codes: [1]}}
        - {{kind: residence, departements: ["77"]}}
gaps:
  no_dentist: {{source: specialty, codes: ["19"], years: [-1]}}
priority: {{any_of: [no_dentist]}}
"""
)

YOUNG = {"ben_nai_ann": "1990"}
NO_ALD: dict[str, Any] = {"ald": [], "ben": YOUNG}

# psa -> (person kwargs, care lines, expected reasons); ALD: the default (8, in force).
FLU_CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], str]] = {
    "F_OK": ({}, [], ""),
    "F_YOUNG_ALD": ({"ben": YOUNG}, [], ""),
    "F_YOUNG_NO_ALD": (NO_ALD, [], "under_age;no_ald_in_force"),
    "F_YOUNG_ALD_OPEN": ({"ben": YOUNG, "ald": [{"imb_ald_dtf": date(1600, 1, 1)}]}, [], ""),
    "F_YOUNG_ALD_ENDED_D_MINUS_1": (
        {"ben": YOUNG, "ald": [{"imb_ald_dtf": D - timedelta(days=1)}]},
        [],
        "under_age;no_ald_in_force",
    ),
    "F_YOUNG_ALD_ENDS_ON_D": ({"ben": YOUNG, "ald": [{"imb_ald_dtf": D}]}, [], ""),
    "F_YOUNG_ALD_STARTS_D_PLUS_1": (
        {"ben": YOUNG, "ald": [{"imb_ald_dtd": D + timedelta(days=1)}]},
        [],
        "under_age;no_ald_in_force",
    ),
    "F_YOUNG_OTHER_ALD": (
        {"ben": YOUNG, "ald": [{"imb_ald_num": 5, "med_mtf_cod": "I50"}]},
        [],
        "under_age;no_ald_in_force",
    ),
    "F_YOUNG_ALD_NATURE_12": (
        {"ben": YOUNG, "ald": [{"imb_etm_nat": 12}]},
        [],
        "under_age;no_ald_in_force",
    ),
    "F_PARIS": ({"ben": {"ben_res_dpt": "75"}}, [], "excluded:residence"),
    "F_VACC_SEASON_START": ({}, [{"on": SEASON, "cip": [FLU]}], "care_found:vaccinated"),
    "F_VACC_DAY_BEFORE_SEASON": ({}, [{"on": SEASON - timedelta(days=1), "cip": [FLU]}], ""),
    "F_VACC_ON_D": ({}, [{"on": D, "cip": [FLU]}], "care_found:vaccinated"),
    "F_VACC_AFTER_D": ({}, [{"on": D + timedelta(days=1), "cip": [FLU]}], ""),
    "F_OTHER_ATC": ({}, [{"on": D, "cip": [HEP]}], ""),
    "F_CIP_NOT_IN_REFERENTIAL": ({}, [{"on": D, "cip": [UNKNOWN_CIP]}], ""),
    "F_VACC_KEY_OFF": ({}, [{"on": D, "cip": [FLU], "break_key": "prs_ord_num"}], ""),
    "F_DEAD": ({"ben": {"ben_dcd_dte": date(2026, 1, 1)}}, [], "deceased"),
    "F_MANY": (
        {"ald": [], "ben": {**YOUNG, "ben_res_dpt": "75"}, "no_contact": True},
        [{"on": SEASON, "cip": [FLU]}],
        "under_age;no_ald_in_force;excluded:residence;care_found:vaccinated;no_contact_record",
    ),
    "F_AGE_80": ({"ben": {"ben_nai_ann": "1946", "ben_nai_moi": "03"}}, [], ""),
    "F_AGE_79": ({"ben": {"ben_nai_ann": "1946", "ben_nai_moi": "04"}}, [], ""),
}
FLU_PRIORITY = {"F_AGE_80": True, "F_AGE_79": False, "F_OK": False}

# psa -> (care lines, expected (no_gp_year, no_hba1c_6m)); all eligible under FLU_RULE.
WINDOW_CASES: dict[str, tuple[list[dict[str, Any]], tuple[bool, bool]]] = {
    "W_NONE": ([], (True, True)),
    "W_GP_D_MINUS_365": ([{"on": D - timedelta(days=365), "specialty": 1}], (True, True)),
    "W_GP_D_MINUS_364": ([{"on": D - timedelta(days=364), "specialty": 1}], (False, True)),
    "W_GP_ON_D": ([{"on": D, "specialty": 1}], (False, True)),
    "W_GP_AFTER_D": ([{"on": D + timedelta(days=1), "specialty": 1}], (True, True)),
    # D − 6 months = 2025-09-02: excluded; the next day included.
    "W_HBA1C_6M_BOUNDARY": (
        [{"on": date(2025, 9, 2), "lab": ["1577"], "specialty": 38}],
        (True, True),
    ),
    "W_HBA1C_6M_INSIDE": (
        [{"on": date(2025, 9, 3), "lab": ["1577"], "specialty": 38}],
        (True, False),
    ),
}

GP_LAST_YEAR: dict[str, Any] = {"on": date(2025, 6, 10), "specialty": 1}
MAN = {"ben_sex_cod": 1}
# psa -> (person kwargs, care lines, programme dates, expected reasons); no GP declared.
MT_CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], list[date], str]] = {
    "M_60_BIRTH_MONTH": ({"ben": {"ben_nai_ann": "1966", "ben_nai_moi": "03"}}, [], [], ""),
    "M_60_LAST_MONTH": ({"ben": {"ben_nai_ann": "1966", "ben_nai_moi": "02"}}, [], [], ""),
    "M_59_NEXT_MONTH": (
        {"ben": {"ben_nai_ann": "1966", "ben_nai_moi": "04"}},
        [],
        [],
        "not_exact_age",
    ),
    "M_61": ({"ben": {"ben_nai_ann": "1965", "ben_nai_moi": "02"}}, [], [], "not_exact_age"),
    "M_50": ({"ben": {"ben_nai_ann": "1976", "ben_nai_moi": "01"}}, [], [], ""),
    "M_BIRTH_UNKNOWN": ({"ben": {"ben_nai_ann": "1600"}}, [], [], "birth_date_unknown"),
    "M_MT_DECLARED": ({"mtt": [{}]}, [], [], "has_medecin_traitant"),
    "M_MT_ENDED_D_MINUS_1": ({"mtt": [{"mtt_fin_dte": D - timedelta(days=1)}]}, [], [], ""),
    "M_MT_ENDS_ON_D": ({"mtt": [{"mtt_fin_dte": D}]}, [], [], "has_medecin_traitant"),
    "M_MT_SENTINEL_END": (
        {"mtt": [{"mtt_fin_dte": date(1600, 1, 1)}]},
        [],
        [],
        "has_medecin_traitant",
    ),
    "M_MT_STARTS_D_PLUS_1": ({"mtt": [{"mtt_dep_dte": D + timedelta(days=1)}]}, [], [], ""),
    "M_REGISTERED_ON_D": ({}, [], [D], "already_enrolled"),
    "M_REGISTERS_D_PLUS_1": ({}, [], [D + timedelta(days=1)], ""),
    "M_NO_GP_LAST_YEAR": ({}, None, [], "care_missing:seen_gp"),  # type: ignore[dict-item]
    "M_GP_DEC_31": ({}, [{"on": date(2025, 12, 31), "specialty": 22}], [], ""),
    "M_GP_THIS_YEAR_ONLY": (
        {},
        [{"on": date(2026, 1, 5), "specialty": 1}],
        [],
        "care_missing:seen_gp",
    ),
    "M_MAN_77": ({"ben": {**MAN, "ben_res_dpt": "77"}}, [], [], "excluded:all_of"),
    "M_MAN_93": ({"ben": MAN}, [], [], ""),
    "M_WOMAN_77": ({"ben": {"ben_res_dpt": "77"}}, [], [], ""),
    "M_DENTIST": ({}, [GP_LAST_YEAR, {"on": date(2025, 3, 3), "specialty": 19}], [], ""),
}
MT_BASE = {"ben_nai_ann": "1966", "ben_nai_moi": "03"}


def build() -> tuple[Extract, list[tuple[str, date]]]:
    x = Extract()
    for psa, (kw, lines, _) in FLU_CASES.items():
        x.person(psa, **kw)
        for line in lines:
            x.care(psa, **line)
    for psa, (lines, _) in WINDOW_CASES.items():
        x.person(psa)
        for line in lines:
            x.care(psa, **line)
    registered: list[tuple[str, date]] = []
    for psa, (kw, lines, dates, _) in MT_CASES.items():
        x.person(psa, **{"mtt": [], **kw, "ben": {**MT_BASE, **kw.get("ben", {})}})
        # [] = a GP visit last year (the default), None = no care at all.
        for line in (lines or [GP_LAST_YEAR]) if lines is not None else []:
            x.care(psa, **line)
        registered += [(psa, d) for d in dates]
    x.add("ir_pha_r", pha_cip_c13=FLU, pha_atc_c07="J07BB01")
    x.add("ir_pha_r", pha_cip_c13=HEP, pha_atc_c07="J07BC01")
    return x, registered


def write(folder: Path, fmt: str) -> Path:
    x, registered = build()
    x.write(folder, fmt)
    rows = [{"ben_nir_psa": p, "ben_rng_gem": 1, "date_inscription": d} for p, d in registered]
    if fmt == "parquet":
        schema = pa.schema(
            [
                ("ben_nir_psa", pa.string()),
                ("ben_rng_gem", pa.int64()),
                ("date_inscription", pa.date32()),
            ]
        )
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / f"{PROGRAMME}.parquet")
    else:
        with (folder / f"{PROGRAMME}.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["ben_nir_psa", "ben_rng_gem", "date_inscription"])
            w.writeheader()
            w.writerows({**r, "date_inscription": r["date_inscription"].isoformat()} for r in rows)
    return folder


@pytest.fixture(scope="module", params=["csv", "parquet"])
def extract(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp(request.param), request.param)


def duck(r: TargetingRule, x: Path) -> pd.DataFrame:
    t = run_targeting(rule=r, extract=x, as_of=D, include_ineligible=True).to_pandas()
    return t.set_index(["ben_nir_psa", "ben_rng_gem"])


@pytest.fixture(scope="module")
def flu(extract: Path) -> pd.DataFrame:
    return duck(FLU_RULE, extract)


@pytest.fixture(scope="module")
def mt(extract: Path) -> pd.DataFrame:
    return duck(MT_RULE, extract)


@pytest.mark.parametrize("psa", list(FLU_CASES))
def test_flu_eligibility(flu: pd.DataFrame, psa: str) -> None:
    row = flu.loc[(psa, 1)]
    assert row["reasons"] == FLU_CASES[psa][2]
    assert bool(row["eligible"]) == (FLU_CASES[psa][2] == "")


@pytest.mark.parametrize("psa", list(FLU_PRIORITY))
def test_priority_when_is_a_criterion(flu: pd.DataFrame, psa: str) -> None:
    assert bool(flu.loc[(psa, 1)]["priority"]) == FLU_PRIORITY[psa]


@pytest.mark.parametrize("psa", list(WINDOW_CASES))
def test_gap_windows_in_days_and_months(flu: pd.DataFrame, psa: str) -> None:
    row = flu.loc[(psa, 1)]
    assert row["eligible"]
    assert (bool(row["no_gp_year"]), bool(row["no_hba1c_6m"])) == WINDOW_CASES[psa][1]


@pytest.mark.parametrize("psa", list(MT_CASES))
def test_birthday_and_medecin_traitant(mt: pd.DataFrame, psa: str) -> None:
    row = mt.loc[(psa, 1)]
    assert row["reasons"] == MT_CASES[psa][3]
    assert bool(row["eligible"]) == (MT_CASES[psa][3] == "")


def test_birth_date_column_only_with_exact_ages(flu: pd.DataFrame, mt: pd.DataFrame) -> None:
    assert "birth_date" not in flu.columns
    assert list(mt.columns[-3:]) == ["birth_date", "echelon", "reasons"]
    assert mt.loc[("M_59_NEXT_MONTH", 1)]["birth_date"] == date(1966, 4, 1)
    assert pd.isna(mt.loc[("M_BIRTH_UNKNOWN", 1)]["birth_date"])
    assert pd.isna(mt.loc[("M_50", 1)]["ald_end_date"])


def test_priority_any_of_gaps(mt: pd.DataFrame) -> None:
    assert not mt.loc[("M_DENTIST", 1)]["priority"] and mt.loc[("M_50", 1)]["priority"]


def _records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        tuple(None if pd.isna(v) else (v.date() if isinstance(v, pd.Timestamp) else v) for v in r)
        for r in frame.reset_index().itertuples(index=False)
    ]


@pytest.mark.parametrize("which", ["flu", "mt"])
def test_the_pandas_oracle_agrees_row_for_row(
    extract: Path, flu: pd.DataFrame, mt: pd.DataFrame, which: str
) -> None:
    r, result = (FLU_RULE, flu) if which == "flu" else (MT_RULE, mt)
    oracle = run_oracle(rule=r, extract=extract, as_of=D)
    assert list(oracle.columns) == ["ben_nir_psa", "ben_rng_gem", *result.columns]
    assert len(oracle) > 40
    assert _records(oracle.set_index(["ben_nir_psa", "ben_rng_gem"])) == _records(result)


def test_tables_needed_and_the_checker_names_a_missing_table(tmp_path: Path) -> None:
    assert {"er_pha_f", "ir_pha_r", "er_prs_f"} <= set(tables_needed(FLU_RULE))
    assert PROGRAMME in tables_needed(MT_RULE) and "er_pha_f" not in tables_needed(MT_RULE)
    x = write(tmp_path / "x", "csv")
    assert check_extract(x, tables_needed(MT_RULE), specs=table_specs(MT_RULE)) == []
    (x / f"{PROGRAMME}.csv").unlink()
    (x / "er_pha_f.csv").unlink()
    problems = check_extract(x, tables_needed(MT_RULE), specs=table_specs(MT_RULE))
    assert [p.reason for p in problems] == [
        f"table {PROGRAMME} manquante (.parquet ou .csv) : la campagne lit cette table"
    ]
    with pytest.raises(ExtractError, match="table er_pha_f manquante"):
        run_targeting(rule=FLU_RULE, extract=x, as_of=D)


def test_the_checker_names_the_programme_date_column(tmp_path: Path) -> None:
    x = write(tmp_path / "x", "csv")
    text = (x / f"{PROGRAMME}.csv").read_text().replace("date_inscription", "date_adhesion")
    (x / f"{PROGRAMME}.csv").write_text(text)
    with pytest.raises(ExtractError, match="date_inscription"):
        run_targeting(rule=MT_RULE, extract=x, as_of=D)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "criteria: [{kind: care, id: x, source: drug, codes: [J07], window: {since: s}}]",
            "paramètre inconnu s",
        ),
        (
            "criteria: [{kind: ald_renewal, ald_num: 8, icd10_prefixes: [], etm_nat: [41]}]",
            "horizon_days est requis",
        ),
        (
            "criteria: [{kind: care, id: x, source: lab, codes: ['1'],"
            " window: {days: 3, months: 1}}]",
            "exactement une forme",
        ),
        ("criteria: [{any_of: [{kind: alive}], not: {kind: alive}}]", "critère inconnu"),
        (
            "criteria: [{kind: care, id: X, source: lab, codes: ['1'], window: {days: 3}}]",
            "pattern",
        ),
        (
            "criteria: [{kind: alive}]\npriority: {when: {kind: alive}, any_of: [g]}",
            "une seule forme",
        ),
        (
            "criteria: [{kind: alive}]\ngaps: {g: {source: lab, codes: ['1'], years: [-1], "
            "window: {days: 2}}}",
            "soit `window`, soit `years`",
        ),
    ],
)
def test_validation_errors(text: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        rule(text)


def test_sophia_needs_its_horizon_and_others_do_not() -> None:
    assert FLU_RULE.horizon_days is None and MT_RULE.horizon_days is None


def _flat(checks: list[Check]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for c in checks:
        out.setdefault(c.name, c)
        out.update({k: v for k, v in _flat(c.children).items() if k not in out})
    return out


def test_explain_the_new_criteria(extract: Path) -> None:
    def why(r: TargetingRule, psa: str) -> Any:
        return explain_person(rule=r, extract=extract, as_of=D, ben_nir_psa=psa, ben_rng_gem=1)

    x = why(FLU_RULE, "F_VACC_SEASON_START")
    care = _flat(x.criteria)["care"]
    assert (care.passed, care.reason, care.label) == (
        False,
        "care_found:vaccinated",
        "vacciné contre la grippe cette saison",
    )
    assert "vacciné contre la grippe cette saison" in care.detail
    assert "du 2025-09-01 au 2026-03-02" in care.detail
    assert care.rows[0]["code"] == "J07BB01" and care.rows[0]["in_window"]
    young = _flat(why(FLU_RULE, "F_YOUNG_ALD_ENDED_D_MINUS_1").criteria)
    any_of = young["any_of"]
    assert not any_of.passed and [c.passed for c in any_of.children] == [False, False]
    ald = any_of.children[1]
    assert "0 période(s) d'ALD en vigueur" in ald.detail and not ald.rows[0]["in_force"]
    paris = _flat(why(FLU_RULE, "F_PARIS").criteria)["not"]
    assert (paris.passed, paris.reason) == (False, "excluded:residence")
    assert paris.children[0].passed and "exclue" in paris.detail
    old = why(FLU_RULE, "F_AGE_80")
    assert old.priority and old.priority_rule is not None and old.priority_rule.passed
    gp = _flat(why(FLU_RULE, "W_GP_D_MINUS_365").gaps)["no_gp_year"]
    assert not gp.passed and "aucun du 2025-03-03 au 2026-03-02" in gp.detail
    mt = _flat(why(MT_RULE, "M_MT_ENDS_ON_D").criteria)
    assert mt["medecin_traitant"].reason == "has_medecin_traitant"
    assert "1 déclaration(s) de médecin traitant en vigueur" in mt["medecin_traitant"].detail
    assert "âge exact exigé" in mt["age"].detail
    reg = _flat(why(MT_RULE, "M_REGISTERED_ON_D").criteria)["not_enrolled"]
    assert reg.reason == "already_enrolled" and "adhérent(e) depuis le 02/03/2026" in reg.detail


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark")
    from targeting.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_spark_gives_duckdbs_rows(spark: Any, tmp_path: Path, fmt: str) -> None:
    from targeting.spark import run_targeting_spark

    x = write(tmp_path / fmt, fmt)
    for r in (FLU_RULE, MT_RULE):
        d = run_targeting(rule=r, extract=x, as_of=D, include_ineligible=True)
        sp = run_targeting_spark(
            rule=r, extract=str(x), as_of=D, include_ineligible=True, spark=spark
        )
        assert sp.num_rows == d.num_rows > 40
        assert sp.to_pylist() == d.to_pylist()
        only = run_targeting_spark(rule=r, extract=str(x), as_of=D, spark=spark)
        assert only.to_pylist() == run_targeting(rule=r, extract=x, as_of=D).to_pylist()


def test_a_campaign_file_names_the_nested_yaml_path(tmp_path: Path) -> None:
    from campaigns.definition.catalog import load_campaign
    from campaigns.definition.model import DEFINITIONS_DIR, DefinitionError

    folder = tmp_path / "c"
    shutil.copytree(DEFINITIONS_DIR / "sophia_ald8", folder)
    text = (folder / "campaign.yaml").read_text()
    nested = "    - not: {kind: medecin_traitant, declred: false}\n"
    (folder / "campaign.yaml").write_text(text.replace("    - {kind: medecin_traitant}\n", nested))
    with pytest.raises(DefinitionError) as e:
        load_campaign(str(folder))
    assert (
        "targeting.criteria[3].not.declred: clé inconnue (vouliez-vous dire 'declared' ?)"
        in str(e.value)
    )


def test_every_targeting_reason_has_french_words() -> None:
    from campaigns.definition.reasons import reason_label, targeting_reason_label
    from targeting.rule import REASONS

    for codes in REASONS.values():
        for code in codes:
            qualified = f"{code}:x" if code in ("care_found", "care_missing", "excluded") else code
            assert reason_label(code) and reason_label(qualified)
    words = targeting_reason_label("care_found:vaccinated", {"vaccinated": "vacciné"})
    assert words.endswith(" : vacciné")


# Everything at once on a synthetic region: nested any_of/all_of, a `not` around a drug care
# criterion, no MT declared, windows in months and years, priority when with an absent lab.
MIXED_RULE = rule(
    """
parameters: {s: 2026-09-01}
criteria:
  - {kind: alive}
  - any_of:
      - {kind: age, min_years: 65}
      - all_of: [{kind: age, min_years: 18}, {kind: ald_in_force, etm_nat: [41, 43, 45]}]
  - not: {kind: care, id: v, source: drug, codes: [J07BB], window: {since: s}}
  - {kind: medecin_traitant, declared: false}
gaps:
  g1: {source: specialty, codes: ["1"], window: {months: 12}}
  g2: {source: ccam, codes: [BGQP140], window: {years: [-2, -1, 0]}}
priority:
  when:
    any_of:
      - {kind: age, min_years: 80}
      - {kind: care, id: w, source: lab, codes: ["0592"], window: {days: 400}, present: false}
"""
)
SYNTH_DAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from targeting.synth import write_extract

    out = tmp_path_factory.mktemp("region") / "x"
    write_extract(out=out, people=6_000, seed=5, as_of=SYNTH_DAY)
    return out


@pytest.mark.parametrize("which", ["flu", "mixed"])
def test_the_oracle_agrees_on_a_synthetic_region(region: Path, which: str) -> None:
    r = FLU_RULE if which == "flu" else MIXED_RULE
    d = run_targeting(rule=r, extract=region, as_of=SYNTH_DAY, include_ineligible=True)
    frame = d.to_pandas().set_index(["ben_nir_psa", "ben_rng_gem"])
    oracle = run_oracle(rule=r, extract=region, as_of=SYNTH_DAY)
    assert 0 < int(frame["eligible"].sum()) < len(frame) == 6_000
    assert int(frame["priority"].sum()) > 0
    assert _records(oracle.set_index(["ben_nir_psa", "ben_rng_gem"])) == _records(frame)


def test_spark_agrees_on_a_synthetic_region(spark: Any, region: Path) -> None:
    from targeting.spark import run_targeting_spark

    d = run_targeting(rule=MIXED_RULE, extract=region, as_of=SYNTH_DAY, include_ineligible=True)
    sp = run_targeting_spark(
        rule=MIXED_RULE, extract=str(region), as_of=SYNTH_DAY, include_ineligible=True, spark=spark
    )
    assert sp.equals(d)


def test_relance_target_names_the_missing_tables_and_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from campaigns.definition.model import DEFINITIONS_DIR
    from console.cli import app

    folder = tmp_path / "c"
    shutil.copytree(DEFINITIONS_DIR / "sophia_ald8", folder)
    text = (folder / "campaign.yaml").read_text()
    extra = (
        "    - {kind: not_enrolled, table: mt_inscriptions, date_column: date_inscription}\n"
        "    - {kind: care, id: vaccinated, source: drug, codes: [J07BB], window: {days: 90},"
        " present: false}\n"
    )
    (folder / "campaign.yaml").write_text(
        text.replace("    - {kind: has_contact}\n", "    - {kind: has_contact}\n" + extra)
    )
    x = write(tmp_path / "x", "csv")
    args = ["target", str(folder), "--extract", str(x), "--as-of", D.isoformat()]
    ok = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "ok.csv")])
    assert ok.exit_code == 0, ok.output
    (x / f"{PROGRAMME}.csv").unlink()
    (x / "ir_pha_r.csv").unlink()
    r = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "out.csv")])
    assert r.exit_code == 2
    assert f"table {PROGRAMME} manquante" in r.output and "table ir_pha_r manquante" in r.output
    assert not (tmp_path / "out.csv").exists()


SHARED_REASON_RULE = rule(
    """
criteria:
  - any_of:
      - {kind: age, min_years: 65}
      - all_of:
          - {kind: age, min_years: 40}
          - {kind: ald_in_force, ald_nums: [8], etm_nat: [41, 43, 45]}
"""
)


def test_two_branches_failing_for_one_reason_give_it_once(extract: Path) -> None:
    """Born 1990, no ALD: under age in both branches, said once, on DuckDB and the oracle."""
    oracle = run_oracle(rule=SHARED_REASON_RULE, extract=extract, as_of=D)
    for frame in (
        duck(SHARED_REASON_RULE, extract),
        oracle.set_index(["ben_nir_psa", "ben_rng_gem"]),
    ):
        assert frame.loc[("F_YOUNG_NO_ALD", 1), "reasons"] == "under_age;no_ald_in_force"
