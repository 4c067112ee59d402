"""`relance explain`: the decision for one person, criterion by criterion, with its rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaigns.definition.catalog import load_campaign
from console.cli import app
from targeting.explain import Check, Explanation, explain_person
from tests.extracts import D
from tests.test_targeting import build

RULE = load_campaign("sophia-ald8").definition.targeting


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build().write(tmp_path_factory.mktemp("x"), "parquet")


def why(extract: Path, psa: str, rng: int = 1) -> Explanation:
    return explain_person(rule=RULE, extract=extract, as_of=D, ben_nir_psa=psa, ben_rng_gem=rng)


def by_name(x: Explanation) -> dict[str, Check]:
    return {c.name: c for c in [*x.criteria, *x.gaps]}


def test_an_eligible_priority_person(extract: Path) -> None:
    x = why(extract, "G_ALL")
    assert (x.found, x.eligible, x.priority, x.reasons) == (True, True, True, [])
    assert all(c.passed for c in x.criteria) and not any(g.passed for g in x.gaps)
    ald = by_name(x)["ald_renewal"]
    assert "date de renouvellement 15/04/2026" in ald.detail
    assert ald.rows[0]["med_mtf_cod"] == "E119"


def test_a_misfiled_period_is_shown_and_not_counted(extract: Path) -> None:
    x = why(extract, "MISFILED_LATER_END")
    ald = by_name(x)["ald_renewal"]
    assert (ald.passed, ald.reason) == (False, "renewal_outside_horizon")
    assert "date de renouvellement 01/01/2027" in ald.detail
    assert [r["ald_nature"] for r in ald.rows] == [True, False]


def test_care_gap_evidence_names_the_last_test_and_the_window(extract: Path) -> None:
    renal = by_name(why(extract, "G_RENAL_IN_N2"))["gap_renal"]
    assert not renal.passed
    assert renal.detail == "aucun en 2025 ; le dernier le 10/06/2024 (0592)"
    fundus = by_name(why(extract, "G_NONE"))["gap_fundus"]
    assert fundus.passed and "10/06/2024 (BGQP140)" in fundus.detail
    broken = by_name(why(extract, "G_KEY_PRS_ORD_NUM"))["gap_renal"]
    assert broken.rows == [] and "aucun dans l'extraction" in broken.detail


def test_enrolment_after_the_run_date_is_said(extract: Path) -> None:
    c = by_name(why(extract, "ENROLS_LATER"))["not_enrolled"]
    assert c.passed and "adhère le 03/03/2026" in c.detail


def test_several_reasons_in_order(extract: Path) -> None:
    x = why(extract, "MANY")
    assert x.reasons == ["deceased", "no_medecin_traitant", "no_contact_record"]
    failed = [c.name for c in x.criteria if not c.passed]
    assert failed == ["alive", "medecin_traitant", "has_contact"]


def test_cli_json_and_errors(extract: Path) -> None:
    base = ["explain", "sophia-ald8", "--extract", str(extract), "--as-of", D.isoformat()]
    r = CliRunner().invoke(app, [*base, "--person", "OK:1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["eligible"] is True and data["as_of"] == "2026-03-02"
    assert [c["name"] for c in data["gaps"]] == ["gap_renal", "gap_dental", "gap_fundus"]
    text = CliRunner().invoke(app, [*base, "--person", "DEAD:1"])
    assert text.exit_code == 0 and "NON ÉLIGIBLE" in text.output and "deceased" in text.output
    assert CliRunner().invoke(app, [*base, "--person", "NOBODY:1"]).exit_code == 1
    assert CliRunner().invoke(app, [*base, "--person", "OK"]).exit_code == 2
    assert date.fromisoformat(data["renewal_date"]) == date(2026, 4, 15)
