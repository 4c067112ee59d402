"""Synthetic extracts: deterministic, complete, valid, and realistic enough to mean something."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from stdnum.fr import nir as nir_check
from typer.testing import CliRunner

from bench.targeting.baseline_pandas import run_baseline
from campaigns.definition.catalog import load_campaign
from channels.afnor import validate_address
from console.cli import app
from targeting.engine import run_targeting
from targeting.schema import TABLES
from targeting.synth import write_extract

AS_OF = date(2026, 3, 2)
RULE = load_campaign("sophia-ald8").definition.targeting


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "x"
    write_extract(out=out, people=120_000, seed=3, as_of=AS_OF)
    return out


def q(folder: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{folder}/{t}.parquet')")
    return con.execute(sql).df()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        counts = write_extract(out=tmp_path / name, people=3_000, seed=seed, as_of=AS_OF)
        assert set(counts) == set(TABLES) and counts["ir_ben_r"] == 3_000
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["ir_ben_r.parquet"] != digest(tmp_path / "c")["ir_ben_r.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary left


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_extract(out=tmp_path, people=10, seed=1, as_of=AS_OF)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_population_looks_like_the_domain(big: Path) -> None:
    r = q(
        big,
        """
        WITH adults AS (SELECT * FROM ir_ben_r
                        WHERE ben_nai_ann <> '1600' AND CAST(ben_nai_ann AS INT) <= 2008),
             ald8 AS (SELECT DISTINCT ben_nir_psa, ben_rng_gem FROM ir_imb_r
                      WHERE (imb_ald_num = 8 OR med_mtf_cod LIKE 'E10%' OR med_mtf_cod LIKE 'E11%')
                        AND imb_etm_nat IN (41, 43, 45))
        SELECT
          (SELECT count(*) FROM adults JOIN ald8 USING (ben_nir_psa, ben_rng_gem))
            / (SELECT count(*) FROM adults) AS ald8_adults,
          (SELECT avg(CASE WHEN telephone IS NOT NULL THEN 1 ELSE 0 END) FROM contacts) AS phone,
          (SELECT avg(CASE WHEN compte_ameli THEN 1 ELSE 0 END) FROM contacts) AS compte,
          (SELECT count(*) FROM oppositions) / 120000 AS opposed,
          (SELECT count(*) FROM ir_ben_r WHERE ben_rng_gem = 2) AS twins,
          (SELECT count(*) FROM sophia_adhesions) / (SELECT count(*) FROM ald8) AS enrolled,
          (SELECT count(*) FROM ir_imb_r WHERE imb_ald_num IS NULL OR imb_ald_num = 99) AS bad_num,
          (SELECT count(*) FROM ir_imb_r WHERE imb_etm_nat IN (11, 12, 13)) AS etm_not_ald,
          (SELECT count(*) FROM ir_imb_r WHERE imb_ald_dtf = DATE '1600-01-01') AS open_ended,
          (SELECT count(DISTINCT ben_res_dpt) FROM ir_ben_r) AS echelons
        """,
    ).iloc[0]
    assert 0.038 < r.ald8_adults < 0.052
    assert 0.72 < r.phone < 0.78 and 0.57 < r.compte < 0.63
    assert 0.003 < r.opposed < 0.007
    assert 0.2 < r.enrolled < 0.3
    assert min(r.twins, r.bad_num, r.etm_not_ald, r.open_ended) > 0 and r.echelons == 8


def test_renewals_spread_over_the_years(big: Path) -> None:
    years = q(
        big,
        "SELECT year(imb_ald_dtf) AS y, count(*) AS n FROM ir_imb_r "
        "WHERE imb_ald_num = 8 AND imb_ald_dtf > DATE '2026-12-31' GROUP BY 1 ORDER BY 1",
    )
    per_year = years[years.y.between(2027, 2029)].n
    assert len(per_year) == 3 and per_year.max() < 1.2 * per_year.min()


def test_about_a_third_of_eligible_people_are_priority(big: Path) -> None:
    t = run_targeting(rule=RULE, extract=big, as_of=AS_OF).to_pandas()
    assert len(t) > 100
    assert 0.22 < t["priority"].mean() < 0.45
    assert set(t["echelon"]) == {"75", "77", "78", "91", "92", "93", "94", "95"}


def test_nirs_and_addresses_are_valid(big: Path) -> None:
    c = q(big, "SELECT * FROM contacts USING SAMPLE 5000 ROWS (reservoir, 1)")
    assert all(nir_check.is_valid(n) for n in c["nir"])
    for row in c.itertuples():
        lines = [getattr(row, f"adresse_l{i}") for i in range(1, 7)]
        validate_address([x for x in lines if isinstance(x, str)])
    emails = c["email"].dropna()
    assert emails.str.fullmatch(r"[a-z'-]+\.[a-z'-]+\d{2}@[a-z.]+").all()


def test_care_lines_join_their_acts_by_the_nine_keys(big: Path) -> None:
    r = q(
        big,
        """
        SELECT (SELECT count(*) FROM er_bio_f) AS bio,
               (SELECT count(*) FROM er_bio_f b JOIN er_prs_f p USING (dct_ord_num, flx_dis_dtd,
                  flx_emt_num, flx_emt_ord, flx_emt_typ, flx_trt_dtd, org_cle_num, prs_ord_num,
                  rem_typ_aff)) AS joined,
               (SELECT count(*) FROM (SELECT DISTINCT dct_ord_num, flx_emt_num FROM er_prs_f))
                 AS distinct_lines,
               (SELECT count(*) FROM er_prs_f) AS lines
        """,
    ).iloc[0]
    assert r.distinct_lines == r.lines  # the 9 keys identify a care line
    assert 0.95 * r.bio < r.joined < r.bio  # a few lab rows belong to lines not extracted


def test_csv_extract_gives_the_same_targets_and_the_baseline_agrees(tmp_path: Path) -> None:
    write_extract(out=tmp_path / "p", people=20_000, seed=5, as_of=AS_OF)
    write_extract(out=tmp_path / "c", people=20_000, seed=5, as_of=AS_OF, fmt="csv")
    a = run_targeting(rule=RULE, extract=tmp_path / "p", as_of=AS_OF, include_ineligible=True)
    b = run_targeting(rule=RULE, extract=tmp_path / "c", as_of=AS_OF, include_ineligible=True)
    assert a.equals(b)
    base = run_baseline(rule=RULE, extract=tmp_path / "p", as_of=AS_OF)
    engine = a.to_pandas()
    for col in engine.columns:
        left = engine[col].map(lambda v: None if pd.isna(v) else v).tolist()
        right = base[col].map(lambda v: None if pd.isna(v) else v).tolist()
        assert left == right, col


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "x"
    args = ["synth", "--out", str(out), "--people", "500", "--seed", "1", "--as-of", "2026-03-02"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (out / "er_prs_f.parquet").exists()
    assert (out / "er_pha_f.parquet").exists() and (out / "ir_pha_r.parquet").exists()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "n'est pas vide" in again.output


def test_the_new_lines_leave_sophias_targets_where_they_were(tmp_path: Path) -> None:
    # Pinned before pharmacy and GP lines were added: they are drawn from a stream of their own.
    write_extract(out=tmp_path / "x", people=20_000, seed=5, as_of=AS_OF)
    t = run_targeting(rule=RULE, extract=tmp_path / "x", as_of=AS_OF).to_pandas()
    rows = sorted(
        f"{r.ben_nir_psa}:{r.ben_rng_gem}:{r.priority}:{r.gap_renal}{r.gap_dental}{r.gap_fundus}"
        for r in t[t.eligible].itertuples()
    )
    assert (len(rows), int(t.priority.sum())) == (29, 9)
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    assert digest == "f3a9074c501bc0ff24f574a7d617a656f9d97c2241b4171152b8a29e6cc9a3b2"
