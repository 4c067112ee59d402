"""The Spark backend runs the same SQL as DuckDB and gives the same rows (local mode)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaigns.definition.catalog import load_campaign
from targeting.engine import run_targeting
from targeting.extract import ExtractError
from targeting.synth import write_extract
from tests.extracts import D
from tests.test_targeting import build

RULE = load_campaign("sophia-ald8").definition.targeting


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from targeting.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_hand_built_edge_cases_match_duckdb(spark: Any, tmp_path: Path, fmt: str) -> None:
    from targeting.spark import run_targeting_spark

    x = build().write(tmp_path / fmt, fmt)
    duck = run_targeting(rule=RULE, extract=x, as_of=D, include_ineligible=True)
    sp = run_targeting_spark(
        rule=RULE, extract=str(x), as_of=D, include_ineligible=True, spark=spark
    )
    assert sp.num_rows == duck.num_rows > 50
    assert sp.to_pylist() == duck.to_pylist()


def assert_synthetic_extract_matches_duckdb(
    spark: Any, folder: Path, *, people: int, seed: int
) -> None:
    """Spark and DuckDB give the same table on a synthetic extract, eligible only and everyone."""
    from targeting.spark import run_targeting_spark

    write_extract(out=folder, people=people, seed=seed, as_of=D)
    for everyone in (False, True):
        duck = run_targeting(rule=RULE, extract=folder, as_of=D, include_ineligible=everyone)
        sp = run_targeting_spark(
            rule=RULE, extract=str(folder), as_of=D, include_ineligible=everyone, spark=spark
        )
        assert sp.equals(duck)
    assert duck.num_rows == people


def test_synthetic_extract_matches_duckdb(spark: Any, tmp_path: Path) -> None:
    assert_synthetic_extract_matches_duckdb(spark, tmp_path / "x", people=8_000, seed=11)


def test_missing_table_is_a_clear_error(spark: Any, tmp_path: Path) -> None:
    from targeting.spark import run_targeting_spark

    x = build().write(tmp_path / "x", "parquet")
    (x / "ir_mtt_r.parquet").unlink()
    with pytest.raises(ExtractError, match="table ir_mtt_r manquante"):
        run_targeting_spark(rule=RULE, extract=str(x), as_of=D, spark=spark)
