"""targeting.goals: the first goal act (or MT declaration) on or after each member's `since`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from targeting.extract import ExtractError
from targeting.goals import MEDECIN_TRAITANT_DECLARED, goal_sql, observations
from tests.extracts import Extract

S = date(2026, 10, 14)
FLU, HEP = "3400930000001", "3400930000002"


@dataclass(frozen=True)
class Act:
    source: str
    codes: list[str] = field(default_factory=list)


VACCINE = Act("drug", ["J07BB"])


def day(n: int) -> date:
    return S + timedelta(days=n)


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = Extract()
    for psa in ("BEFORE_AND_AFTER", "ON_SINCE", "OTHER_DRUG", "TWO", "NOT_ASKED", "LATE", "LAB"):
        x.person(psa, mtt=[])
    x.person("TWIN", 1, mtt=[]).person("TWIN", 2, mtt=[])
    x.care("BEFORE_AND_AFTER", day(-1), cip=[FLU]).care("BEFORE_AND_AFTER", day(3), cip=[FLU])
    x.care("ON_SINCE", S, cip=[FLU])
    x.care("OTHER_DRUG", day(1), cip=[HEP])
    x.care("TWO", day(5), cip=[FLU]).care("TWO", day(2), cip=[FLU])
    x.care("NOT_ASKED", day(1), cip=[FLU])
    x.care("LATE", day(40), cip=[FLU])
    x.care("LAB", day(4), lab=["1577"], specialty=38)
    x.care("TWIN", day(6), rng=2, cip=[FLU])
    x.person("MT_ALREADY", mtt=[{"mtt_dep_dte": day(-10)}])
    x.person(
        "MT_NEW",
        mtt=[{"mtt_dep_dte": date(2015, 1, 1), "mtt_fin_dte": day(-2)}, {"mtt_dep_dte": day(1)}],
    )
    x.person("MT_ON_SINCE", mtt=[{"mtt_dep_dte": S}])
    x.add("ir_pha_r", pha_cip_c13=FLU, pha_atc_c07="J07BB02")
    x.add("ir_pha_r", pha_cip_c13=HEP, pha_atc_c07="J07BC01")
    return x.write(tmp_path_factory.mktemp("goals"), "parquet")


def people(*psas: str | tuple[str, int], since: date = S) -> pd.DataFrame:
    keys = [(p, 1) if isinstance(p, str) else p for p in psas]
    return pd.DataFrame([{"ben_nir_psa": p, "ben_rng_gem": r, "since": since} for p, r in keys])


def seen(extract: Path, goal: Act | str, frame: pd.DataFrame, until: date | None = None) -> dict:
    t = observations(extract=extract, goal=goal, people=frame, until=until)  # type: ignore[arg-type]
    return {(r["ben_nir_psa"], r["ben_rng_gem"]): r["observed_on"] for r in t.to_pylist()}


def test_first_dispensation_on_or_after_since(extract: Path) -> None:
    frame = people(
        "BEFORE_AND_AFTER", "ON_SINCE", "OTHER_DRUG", "TWO", "LATE", "TWIN", ("TWIN", 2), "UNKNOWN"
    )
    assert seen(extract, VACCINE, frame) == {
        ("BEFORE_AND_AFTER", 1): day(3),
        ("ON_SINCE", 1): S,
        ("TWO", 1): day(2),
        ("LATE", 1): day(40),
        ("TWIN", 2): day(6),
    }


def test_until_bounds_the_observation(extract: Path) -> None:
    got = seen(extract, VACCINE, people("LATE", "TWO"), until=day(30))
    assert got == {("TWO", 1): day(2)}


def test_each_member_has_their_own_since(extract: Path) -> None:
    frame = pd.concat([people("TWO", since=day(3)), people("BEFORE_AND_AFTER", since=day(-5))])
    assert seen(extract, VACCINE, frame) == {
        ("TWO", 1): day(5),
        ("BEFORE_AND_AFTER", 1): day(-1),
    }


def test_lab_act(extract: Path) -> None:
    assert seen(extract, Act("lab", ["1577"]), people("LAB", "TWO")) == {("LAB", 1): day(4)}
    assert seen(extract, Act("specialty", ["38"]), people("LAB")) == {("LAB", 1): day(4)}


def test_medecin_traitant_declared_after_since(extract: Path) -> None:
    frame = people("MT_ALREADY", "MT_NEW", "MT_ON_SINCE", "TWO")
    assert seen(extract, MEDECIN_TRAITANT_DECLARED, frame) == {
        ("MT_NEW", 1): day(1),
        ("MT_ON_SINCE", 1): S,
    }


def test_empty_frame_and_unknown_fact(extract: Path) -> None:
    empty = pd.DataFrame(
        {
            "ben_nir_psa": pd.Series([], dtype=str),
            "ben_rng_gem": pd.Series([], dtype="int64"),
            "since": pd.Series([], dtype="datetime64[s]"),
        }
    )
    assert seen(extract, VACCINE, empty) == {}
    with pytest.raises(ValueError, match="fait de registre inconnu"):
        goal_sql("enrolled")  # type: ignore[arg-type]


def test_a_missing_table_is_named(tmp_path: Path, extract: Path) -> None:
    x = tmp_path / "x"
    x.mkdir()
    for f in extract.iterdir():
        if f.name != "er_pha_f.parquet":
            (x / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ExtractError, match="table er_pha_f manquante"):
        observations(extract=x, goal=VACCINE, people=people("TWO"))  # type: ignore[arg-type]
