"""Goal observations over the extract: when did a member do what the campaign asks?

Pure, set-based queries (DuckDB, one query per call), no ledger: the campaign side gives the
members and the day each one's observation starts (`since`: the first contact for a care act,
the entry for a registry fact) and gets back the first matching date on or after it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal, Protocol

import duckdb
import pandas as pd
import pyarrow as pa

from targeting.engine import CARE_JOIN, sql_list, sql_literal
from targeting.extract import open_extract, read_failure

MEDECIN_TRAITANT_DECLARED = "medecin_traitant_declared"
RegistryFact = Literal["medecin_traitant_declared"]

_ACT_TABLES: dict[str, tuple[str, ...]] = {
    "lab": ("er_prs_f", "er_bio_f"),
    "ccam": ("er_prs_f", "er_cam_f"),
    "specialty": ("er_prs_f",),
    "drug": ("er_prs_f", "er_pha_f", "ir_pha_r"),
}
OUTPUT = pa.schema(
    [("ben_nir_psa", pa.string()), ("ben_rng_gem", pa.int64()), ("observed_on", pa.date32())]
)


class ActSpec(Protocol):
    """A goal care act: the same `source` and `codes` as a targeting `care` criterion."""

    @property
    def source(self) -> str: ...

    @property
    def codes(self) -> list[str]: ...


def _act_lines(source: str, codes: list[str]) -> str:
    """Every care line of the act (person, care date), before any date filter."""
    cols = "p.ben_nir_psa, p.ben_rng_gem, p.exe_soi_dtd AS on_date"
    if source == "specialty":
        return (
            f"SELECT {cols} FROM er_prs_f p "
            f"WHERE p.pse_spe_cod IN {sql_list([int(c) for c in codes])}"
        )
    if source == "drug":
        atc = " OR ".join(f"r.pha_atc_c07 LIKE {sql_literal(c + '%')}" for c in codes)
        return (
            f"SELECT {cols} FROM er_prs_f p JOIN er_pha_f a ON {CARE_JOIN} "
            f"JOIN ir_pha_r r ON r.pha_cip_c13 = a.pha_prs_c13 WHERE {atc}"
        )
    table, code = {"lab": ("er_bio_f", "bio_prs_ide"), "ccam": ("er_cam_f", "cam_prs_ide")}[source]
    return (
        f"SELECT {cols} FROM er_prs_f p JOIN {table} a ON {CARE_JOIN} "
        f"WHERE a.{code} IN {sql_list(codes)}"
    )


def goal_sql(goal: ActSpec | RegistryFact, until: date | None = None) -> str:
    """The query over the registered `goal_people` (ben_nir_psa, ben_rng_gem, since)."""
    if isinstance(goal, str):
        if goal != MEDECIN_TRAITANT_DECLARED:
            raise ValueError(f"fait de registre inconnu : {goal!r}")
        events = "SELECT ben_nir_psa, ben_rng_gem, mtt_dep_dte AS on_date FROM ir_mtt_r"
    else:
        events = _act_lines(goal.source, list(goal.codes))
    bound = f" AND e.on_date <= {sql_literal(until)}" if until is not None else ""
    return f"""
SELECT f.ben_nir_psa, f.ben_rng_gem, min(e.on_date) AS observed_on
FROM goal_people f
JOIN ({events}) e ON e.ben_nir_psa = f.ben_nir_psa AND e.ben_rng_gem = f.ben_rng_gem
WHERE e.on_date >= f.since{bound}
GROUP BY f.ben_nir_psa, f.ben_rng_gem
ORDER BY f.ben_nir_psa, f.ben_rng_gem
"""


def tables_for(goal: ActSpec | RegistryFact) -> list[str]:
    """The extract tables a goal's observation reads."""
    return ["ir_mtt_r"] if isinstance(goal, str) else list(_ACT_TABLES[goal.source])


def observations(
    *,
    extract: Path,
    goal: ActSpec | RegistryFact,
    people: pa.Table | pd.DataFrame,
    until: date | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """(ben_nir_psa, ben_rng_gem, observed_on) for the people with an observation.

    `people` has ben_nir_psa, ben_rng_gem and since (a date); `observed_on` is the first
    matching care date on or after `since` (acts), or the first médecin traitant declaration
    starting on or after it (`medecin_traitant_declared`); never after `until` when given.
    """
    frame = people if isinstance(people, pa.Table) else pa.Table.from_pandas(people)
    frame = frame.select(["ben_nir_psa", "ben_rng_gem", "since"]).cast(
        pa.schema(
            [("ben_nir_psa", pa.string()), ("ben_rng_gem", pa.int64()), ("since", pa.date32())]
        )
    )
    own = con is None
    con = con or duckdb.connect()
    paths: dict[str, Path] = {}
    try:
        paths = open_extract(con, Path(extract), tables_for(goal))
        con.register("goal_people", frame)
        try:
            return con.sql(goal_sql(goal, until)).to_arrow_table().cast(OUTPUT)
        finally:
            con.unregister("goal_people")
    except duckdb.Error as e:
        raise read_failure(e, Path(extract), paths) from None
    finally:
        if own:
            con.close()
