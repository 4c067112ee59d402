"""Contact details and civil data of chosen people, read from an extract."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from targeting.extract import open_extract


def read_people(extract: Path, keys: pd.DataFrame) -> pd.DataFrame:
    """Contacts joined with `ir_ben_r` for the given (ben_nir_psa, ben_rng_gem) pairs."""
    con = duckdb.connect()
    try:
        # The same typed views as targeting (already checked when targeting read them).
        open_extract(con, Path(extract), ["contacts", "ir_ben_r"])
        con.register("wanted", keys[["ben_nir_psa", "ben_rng_gem"]])
        return con.execute(
            """
            SELECT c.*, b.ben_sex_cod, b.ben_nai_ann, b.ben_nai_moi, b.ben_res_dpt
            FROM contacts c
            JOIN wanted w USING (ben_nir_psa, ben_rng_gem)
            JOIN ir_ben_r b USING (ben_nir_psa, ben_rng_gem)
            ORDER BY ben_nir_psa, ben_rng_gem
            """
        ).df()
    finally:
        con.close()
