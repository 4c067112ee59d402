"""Pharmacy lines and the drug referential: synth's shares, the 9-key join, the checker."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from campaigns.definition.catalog import load_campaign
from console.cli import app
from targeting.engine import run_targeting, tables_needed
from targeting.extract import ExtractError, check_extract, open_extract
from targeting.schema import JOIN_KEYS, TABLES
from targeting.synth import season_start, write_extract
from tests.extracts import Extract

AS_OF = date(2027, 2, 1)  # the 2026 season is over: every shot of it is dispensed
SOPHIA = load_campaign("sophia-ald8").definition.targeting
KEYS = ", ".join(JOIN_KEYS)
# Ages as sophia counts them: the first day of the birth month plus N years on or before D.
AGE_65 = (
    "ben_nai_ann <> '1600' AND make_date(CAST(ben_nai_ann AS INT), CAST(ben_nai_moi AS INT), 1)"
    " + INTERVAL 65 YEAR <= DATE '{d}'"
)
ALIVE = "(ben_dcd_dte IS NULL OR ben_dcd_dte = DATE '1600-01-01')"


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pha") / "x"
    write_extract(out=out, people=50_000, seed=11, as_of=AS_OF)
    return out


def q(folder: Path, sql: str, fmt: str = "parquet") -> pd.DataFrame:
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_{fmt}('{folder}/{t}.{fmt}')")
    return con.execute(sql).df()


def flu_share(folder: Path, d: date) -> float:
    """Share of the living aged 65 or more with a J07BB dispensation this season."""
    r = q(
        folder,
        f"""
        WITH old AS (SELECT ben_nir_psa, ben_rng_gem FROM ir_ben_r
                     WHERE {AGE_65.format(d=d)} AND {ALIVE}),
             shot AS (SELECT DISTINCT p.ben_nir_psa, p.ben_rng_gem
                      FROM er_pha_f f JOIN er_prs_f p USING ({KEYS})
                      JOIN ir_pha_r r ON r.pha_cip_c13 = f.pha_prs_c13
                      WHERE r.pha_atc_c07 LIKE 'J07BB%'
                        AND p.exe_soi_dtd BETWEEN DATE '{season_start(d)}' AND DATE '{d}')
        SELECT (SELECT count(*) FROM old JOIN shot USING (ben_nir_psa, ben_rng_gem))
               / (SELECT count(*) FROM old) AS share
        """,
    )
    return float(r.share.iloc[0])


def test_a_fifth_are_65_or_more_and_half_of_them_vaccinated(region: Path) -> None:
    r = q(
        region,
        f"SELECT avg(CASE WHEN {AGE_65.format(d=AS_OF)} THEN 1 ELSE 0 END) AS old FROM ir_ben_r",
    ).iloc[0]
    assert 0.18 < r.old < 0.24
    assert 0.45 < flu_share(region, AS_OF) < 0.55


def test_flu_shots_spread_from_mid_october(region: Path) -> None:
    r = q(
        region,
        f"""
        SELECT min(exe_soi_dtd) AS first, max(exe_soi_dtd) AS last,
               avg(CASE WHEN exe_soi_dtd < DATE '2026-10-15' THEN 1 ELSE 0 END) AS early,
               avg(CASE WHEN exe_soi_dtd < DATE '2026-12-01' THEN 1 ELSE 0 END) AS by_december
        FROM er_pha_f f JOIN er_prs_f p USING ({KEYS})
        JOIN ir_pha_r r ON r.pha_cip_c13 = f.pha_prs_c13
        WHERE r.pha_atc_c07 LIKE 'J07BB%' AND exe_soi_dtd >= DATE '2026-09-01'
        """,
    ).iloc[0]
    assert r["first"] >= pd.Timestamp("2026-09-01") and r["last"] <= pd.Timestamp("2027-01-31")
    assert r.early < 0.05  # a few pharmacies start with the season
    assert 0.55 < r.by_december < 0.9


def test_the_extract_date_decides_how_many_are_dispensed_yet(tmp_path: Path) -> None:
    shares = []
    for d in (date(2026, 10, 1), date(2026, 11, 15)):
        write_extract(out=tmp_path / str(d), people=20_000, seed=11, as_of=d)
        shares.append(flu_share(tmp_path / str(d), d))
        latest = q(tmp_path / str(d), "SELECT max(exe_soi_dtd) AS m FROM er_prs_f").m.iloc[0]
        assert latest <= pd.Timestamp(d)  # nothing after the extract date
    assert shares[0] < 0.03 and 0.15 < shares[1] < 0.4


def test_six_percent_of_people_in_ald_have_no_medecin_traitant(region: Path) -> None:
    d = AS_OF
    r = q(
        region,
        f"""
        WITH ald AS (SELECT DISTINCT ben_nir_psa, ben_rng_gem FROM ir_imb_r
                     WHERE imb_etm_nat IN (41, 43, 45) AND imb_ald_dtd <= DATE '{d}'
                       AND (imb_ald_dtf = DATE '1600-01-01' OR imb_ald_dtf >= DATE '{d}')),
             mt AS (SELECT DISTINCT ben_nir_psa, ben_rng_gem FROM ir_mtt_r
                    WHERE mtt_dep_dte <= DATE '{d}'
                      AND (mtt_fin_dte IS NULL OR mtt_fin_dte >= DATE '{d}'))
        SELECT avg(CASE WHEN mt.ben_nir_psa IS NULL THEN 1 ELSE 0 END) AS without
        FROM ald LEFT JOIN mt USING (ben_nir_psa, ben_rng_gem)
        """,
    ).iloc[0]
    assert 0.045 < r.without < 0.075


def test_gp_lines_and_metformin_for_diabetics(region: Path) -> None:
    r = q(
        region,
        f"""
        WITH diab AS (SELECT DISTINCT ben_nir_psa, ben_rng_gem FROM ir_imb_r
                      WHERE (imb_ald_num = 8 OR med_mtf_cod LIKE 'E1%')
                        AND imb_etm_nat IN (41, 43, 45)),
             met AS (SELECT DISTINCT ben_nir_psa, ben_rng_gem
                     FROM er_pha_f f JOIN er_prs_f p USING ({KEYS})
                     JOIN ir_pha_r r ON r.pha_cip_c13 = f.pha_prs_c13
                     WHERE r.pha_atc_c07 = 'A10BA02')
        SELECT (SELECT count(*) FROM er_prs_f WHERE pse_spe_cod IN (1, 22, 23)) AS gp,
               (SELECT count(*) FROM diab JOIN met USING (ben_nir_psa, ben_rng_gem))
                 / (SELECT count(*) FROM diab) AS diabetics_on_metformin,
               (SELECT count(*) FROM met ANTI JOIN diab USING (ben_nir_psa, ben_rng_gem))
                 AS others_on_metformin
        """,
    ).iloc[0]
    assert r.gp > 50_000
    assert 0.7 < r.diabetics_on_metformin < 0.85 and r.others_on_metformin == 0


def test_pharmacy_lines_join_er_prs_f_by_the_nine_keys(region: Path) -> None:
    r = q(
        region,
        f"""
        SELECT (SELECT count(*) FROM er_pha_f) AS lines,
               (SELECT count(*) FROM er_pha_f JOIN er_prs_f USING ({KEYS})) AS joined,
               (SELECT count(*) FROM er_pha_f JOIN er_prs_f USING ({KEYS})
                WHERE pse_spe_cod = 50) AS by_pharmacists,
               (SELECT count(*) FROM (SELECT DISTINCT {KEYS} FROM er_prs_f)) AS distinct_lines,
               (SELECT count(*) FROM er_prs_f) AS prs
        """,
    ).iloc[0]
    assert r.lines > 0 and r.joined == r.lines == r.by_pharmacists  # no orphan, no double
    assert r.distinct_lines == r.prs


def test_every_dispensed_cip13_maps_in_the_referential(region: Path) -> None:
    ref = q(region, "SELECT * FROM ir_pha_r")
    assert ref.pha_cip_c13.is_unique
    for cip in ref.pha_cip_c13:
        digits = [int(ch) for ch in cip]
        weighted = sum(v * (3 if i % 2 else 1) for i, v in enumerate(digits[:12]))
        assert cip.startswith("34009") and len(cip) == 13
        assert (10 - weighted % 10) % 10 == digits[12]  # an EAN-13 check digit
    assert (ref.pha_atc_c07.str.startswith("J07BB")).sum() >= 3
    r = q(
        region,
        """
        SELECT count(*) AS unmapped FROM er_pha_f
        ANTI JOIN ir_pha_r ON pha_cip_c13 = pha_prs_c13
        """,
    ).iloc[0]
    assert r.unmapped == 0


def test_parquet_and_csv_hold_the_same_rows_and_pass_the_checker(tmp_path: Path) -> None:
    for fmt in ("parquet", "csv"):
        write_extract(out=tmp_path / fmt, people=5_000, seed=2, as_of=AS_OF, fmt=fmt)
        errors = [p for p in check_extract(tmp_path / fmt) if p.severity == "error"]
        assert errors == []  # a CIP13 is 13 digits, never refused as a NIR
    for t in ("er_pha_f", "ir_pha_r", "er_prs_f"):
        con = duckdb.connect()
        open_extract(con, tmp_path / "parquet", [t])
        a = con.execute(f"SELECT * FROM {t} ORDER BY ALL").df()
        con = duckdb.connect()
        open_extract(con, tmp_path / "csv", [t])
        b = con.execute(f"SELECT * FROM {t} ORDER BY ALL").df()
        pd.testing.assert_frame_equal(a, b)


def test_sophia_needs_no_pharmacy_table(tmp_path: Path) -> None:
    x = Extract().person("A").person("B").write(tmp_path / "x")
    (x / "er_pha_f.csv").unlink()
    (x / "ir_pha_r.csv").unlink()
    assert "er_pha_f" not in tables_needed(SOPHIA)
    out = run_targeting(rule=SOPHIA, extract=x, as_of=date(2026, 3, 2))
    assert out.num_rows == 2
    assert check_extract(x) == []  # the default check: the required tables only
    con = duckdb.connect()
    assert "er_pha_f" not in open_extract(con, x)


def test_a_campaign_reading_a_missing_table_is_told_which(tmp_path: Path) -> None:
    x = Extract().person("A").write(tmp_path / "x")
    (x / "ir_pha_r.csv").unlink()
    problems = check_extract(x, ["ir_ben_r", "contacts", "er_pha_f", "ir_pha_r"])
    assert [(Path(p.file).name, p.reason) for p in problems] == [
        (
            "ir_pha_r.parquet",
            "table ir_pha_r manquante (.parquet ou .csv) : la campagne lit cette table",
        )
    ]
    with pytest.raises(ExtractError, match="table ir_pha_r manquante"):
        open_extract(duckdb.connect(), x, ["er_pha_f", "ir_pha_r"])


def _bad(tmp_path: Path, table: str, row: dict[str, str]) -> list[tuple[str, int | None, str]]:
    """The errors of an extract whose `table` holds one good row (line 2) then `row` (line 3)."""
    x = Extract().person("A").write(tmp_path / "x")
    good = {
        "er_pha_f": {
            **dict.fromkeys(JOIN_KEYS, "1"),
            "flx_dis_dtd": "2026-11-01",
            "flx_trt_dtd": "2026-11-01",
            "org_cle_num": "01931000",
            "pha_prs_c13": "3400930112458",
            "pha_act_qsn": "1",
        },
        "ir_pha_r": {"pha_cip_c13": "3400930112458", "pha_atc_c07": "J07BB02"},
    }[table]
    with (x / f"{table}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(good))
        w.writeheader()
        w.writerow(good)
        w.writerow({**good, **row})
    return [
        (p.column or "", p.row, p.reason)
        for p in check_extract(x, ["er_pha_f", "ir_pha_r"])
        if p.severity == "error"
    ]


@pytest.mark.parametrize(
    ("table", "row", "column", "why"),
    [
        ("er_pha_f", {"pha_prs_c13": "340093011245"}, "pha_prs_c13", "ne suit pas le format"),
        ("er_pha_f", {"pha_act_qsn": "deux"}, "pha_act_qsn", "n'est pas un nombre entier"),
        ("er_pha_f", {"flx_dis_dtd": "01/11/2026"}, "flx_dis_dtd", "n'est pas une date"),
        ("er_pha_f", {"prs_ord_num": ""}, "prs_ord_num", "valeur vide"),
        ("ir_pha_r", {"pha_atc_c07": "J07B"}, "pha_atc_c07", "ne suit pas le format"),
        ("ir_pha_r", {"pha_cip_c13": ""}, "pha_cip_c13", "valeur vide"),
    ],
)
def test_a_bad_pharmacy_cell_names_file_line_column_and_why(
    tmp_path: Path, table: str, row: dict[str, str], column: str, why: str
) -> None:
    errors = _bad(tmp_path, table, row)
    assert len(errors) == 1 and errors[0][:2] == (column, 3) and why in errors[0][2], errors


def test_a_cip13_shaped_like_a_nir_is_no_identifier(tmp_path: Path) -> None:
    # 13 digits that read as a NIR without its key: a product code, not a person.
    assert _bad(tmp_path, "er_pha_f", {"pha_prs_c13": "1850675123456"}) == []
    assert _bad(tmp_path, "ir_pha_r", {"pha_cip_c13": "2850675123456"}) == []


def test_relance_target_names_the_missing_table_and_exits_2(tmp_path: Path) -> None:
    # sophia reads ir_mtt_r and not er_pha_f: only the table it reads is asked for.
    x = Extract().person("A").write(tmp_path / "x")
    for name in ("ir_mtt_r", "er_pha_f", "ir_pha_r"):
        (x / f"{name}.csv").unlink()
    out = tmp_path / "out.csv"
    args = ["target", "sophia-ald8", "--extract", str(x), "--as-of", "2026-03-02"]
    r = CliRunner().invoke(app, [*args, "--output", str(out)])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and not out.exists()
    assert "table ir_mtt_r manquante (.parquet ou .csv) : la campagne lit cette table" in text
    assert "er_pha_f" not in text and "ir_pha_r" not in text
