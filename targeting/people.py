"""Contact details and civil data of chosen people, read from an extract."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from targeting.schema import TABLES


def _source(extract: Path, table: str) -> str:
    pq = extract / f"{table}.parquet"
    if pq.exists():
        return f"read_parquet('{pq.as_posix()}')"
    csv = extract / f"{table}.csv"
    if csv.exists():
        types = {
            c.name: {"str": "VARCHAR", "int": "BIGINT", "date": "DATE", "bool": "BOOLEAN"}[c.type]
            for c in TABLES[table].columns
        }
        cols = ", ".join(f"'{k}': '{v}'" for k, v in types.items())
        return f"read_csv('{csv.as_posix()}', header=true, columns={{{cols}}})"
    raise FileNotFoundError(f"{extract}: no {table}.parquet or {table}.csv")


def read_people(extract: Path, keys: pd.DataFrame) -> pd.DataFrame:
    """Contacts joined with `ir_ben_r` for the given (ben_nir_psa, ben_rng_gem) pairs."""
    con = duckdb.connect()
    try:
        con.register("wanted", keys[["ben_nir_psa", "ben_rng_gem"]])
        return con.execute(
            f"""
            SELECT c.*, b.ben_sex_cod, b.ben_nai_ann, b.ben_nai_moi, b.ben_res_dpt
            FROM {_source(extract, "contacts")} c
            JOIN wanted w USING (ben_nir_psa, ben_rng_gem)
            JOIN {_source(extract, "ir_ben_r")} b USING (ben_nir_psa, ben_rng_gem)
            ORDER BY ben_nir_psa, ben_rng_gem
            """
        ).df()
    finally:
        con.close()
