"""The targeting rule compiled to one SQL query and run in DuckDB over the extract's files.

The query reads views named like the tables (see `targeting.extract`) and keeps to SQL that
DuckDB and Spark SQL both understand, so the same text can run on either engine. Every
parameter (run date, horizon, code lists) is a literal computed here from the rule.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from targeting.extract import open_extract, read_failure
from targeting.files import atomic_path
from targeting.rule import (
    Age,
    AldRenewal,
    Alive,
    Criterion,
    HasContact,
    MedecinTraitant,
    NoCare,
    NoOpposition,
    NotEnrolled,
    Residence,
    Sex,
    TargetingRule,
)
from targeting.schema import JOIN_KEYS, SENTINEL_DATE

KEY = "ben_nir_psa, ben_rng_gem"


def sql_literal(v: str | int | date) -> str:
    if isinstance(v, date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("'", "''") + "'"


def sql_list(values: list[str] | list[int]) -> str:
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


# A care line (p) and its lab or CCAM rows (a) are the same act when all 9 keys match.
CARE_JOIN = " AND ".join(f"p.{k} = a.{k}" for k in JOIN_KEYS)


def ald_kind_sql(c: AldRenewal) -> str:
    """The condition an ALD period must meet to be of the rule's kind (number or ICD-10)."""
    return " OR ".join(
        [f"imb_ald_num = {c.ald_num}"]
        + [f"med_mtf_cod LIKE {sql_literal(p + '%')}" for p in c.icd10_prefixes]
    )


def act_table(g: NoCare) -> tuple[str, str]:
    """The act table of a lab or CCAM care gap, and its code column."""
    return ("er_bio_f", "bio_prs_ide") if g.source == "lab" else ("er_cam_f", "cam_prs_ide")


def output_columns(rule: TargetingRule) -> list[str]:
    """The columns of a targeting result, in order."""
    return [
        "ben_nir_psa",
        "ben_rng_gem",
        "eligible",
        "priority",
        *rule.gaps,
        "ald_end_date",
        "echelon",
        "reasons",
    ]


def tables_needed(rule: TargetingRule) -> list[str]:
    """The extract tables a rule reads."""
    need = {"ir_ben_r", "contacts"}
    for c in rule.criteria:
        if isinstance(c, AldRenewal):
            need.add("ir_imb_r")
        elif isinstance(c, MedecinTraitant):
            need.add("ir_mtt_r")
        elif isinstance(c, NotEnrolled):
            need.add(c.table)
        elif isinstance(c, NoOpposition):
            need.add("oppositions")
    for g in rule.gaps.values():
        need.add("er_prs_f")
        if g.source == "lab":
            need.add("er_bio_f")
        elif g.source == "ccam":
            need.add("er_cam_f")
    return sorted(need)


class _Query:
    """Collects the CTEs and the reason expressions of a rule."""

    def __init__(self, as_of: date) -> None:
        self.d = as_of
        self.ctes: list[str] = []
        self.joins: list[str] = []
        self.reasons: list[str] = []
        self.extra: list[str] = []
        self.prefilter = ""

    def cte(self, name: str, sql: str, join: bool = True) -> None:
        self.ctes.append(f"{name} AS ({sql})")
        if join:
            self.joins.append(
                f"LEFT JOIN {name} ON b.ben_nir_psa = {name}.ben_nir_psa "
                f"AND b.ben_rng_gem = {name}.ben_rng_gem"
            )


def _criterion(q: _Query, c: Criterion, horizon: int) -> None:
    d = sql_literal(q.d)
    sentinel = sql_literal(date.fromisoformat(SENTINEL_DATE))
    if isinstance(c, Alive):
        q.reasons.append(
            f"CASE WHEN b.ben_dcd_dte IS NOT NULL AND b.ben_dcd_dte <> {sentinel} "
            f"AND b.ben_dcd_dte <= {d} THEN 'deceased' END"
        )
    elif isinstance(c, Age):
        year = "TRY_CAST(b.ben_nai_ann AS INTEGER)"
        month = "TRY_CAST(b.ben_nai_moi AS INTEGER)"
        unknown = (
            f"({year} IS NULL OR {year} = 1600 OR {month} IS NULL OR {month} NOT BETWEEN 1 AND 12)"
        )
        age = f"({q.d.year} - {year} - CASE WHEN {q.d.month} < {month} THEN 1 ELSE 0 END)"
        parts = [f"WHEN {unknown} THEN 'birth_date_unknown'"]
        if c.min_years is not None:
            parts.append(f"WHEN {age} < {c.min_years} THEN 'under_age'")
        if c.max_years is not None:
            parts.append(f"WHEN {age} > {c.max_years} THEN 'over_age'")
        q.reasons.append(f"CASE {' '.join(parts)} END")
    elif isinstance(c, Sex):
        q.reasons.append(
            f"CASE WHEN b.ben_sex_cod IS NULL OR b.ben_sex_cod NOT IN {sql_list(c.codes)} "
            "THEN 'sex_not_targeted' END"
        )
    elif isinstance(c, Residence):
        q.reasons.append(
            f"CASE WHEN b.ben_res_dpt IS NULL OR b.ben_res_dpt NOT IN {sql_list(c.departements)} "
            "THEN 'residence_not_targeted' END"
        )
    elif isinstance(c, AldRenewal):
        q.cte(
            "ald",
            f"""SELECT {KEY}, count(*) AS ald_periods,
                   max(CASE WHEN imb_ald_dtf = {sentinel} THEN 1 ELSE 0 END) AS ald_open,
                   max(CASE WHEN imb_ald_dtf <> {sentinel} THEN imb_ald_dtf END) AS ald_end_date
            FROM ir_imb_r
            WHERE ({ald_kind_sql(c)}) AND imb_etm_nat IN {sql_list(c.etm_nat)}
              AND imb_ald_dtd <= {d}
            GROUP BY {KEY}""",
        )
        q.extra.append("ald.ald_end_date AS ald_end_date")
        end = sql_literal(q.d + timedelta(days=horizon))
        q.prefilter = (
            "SELECT 1 FROM ald a0 WHERE a0.ben_nir_psa = b0.ben_nir_psa "
            f"AND a0.ben_rng_gem = b0.ben_rng_gem AND a0.ald_open = 0 "
            f"AND a0.ald_end_date > {d} AND a0.ald_end_date <= {end}"
        )
        q.reasons.append(
            "CASE WHEN ald.ald_periods IS NULL THEN 'no_ald_period' "
            "WHEN ald.ald_open = 1 THEN 'ald_open_ended' "
            f"WHEN NOT (ald.ald_end_date > {d} AND ald.ald_end_date <= {end}) "
            "THEN 'renewal_outside_horizon' END"
        )
    elif isinstance(c, MedecinTraitant):
        q.cte(
            "mtt",
            f"""SELECT DISTINCT {KEY}, 1 AS has_mtt FROM ir_mtt_r
            WHERE mtt_dep_dte <= {d}
              AND (mtt_fin_dte IS NULL OR mtt_fin_dte = {sentinel} OR mtt_fin_dte >= {d})""",
        )
        q.reasons.append("CASE WHEN mtt.has_mtt IS NULL THEN 'no_medecin_traitant' END")
    elif isinstance(c, NotEnrolled):
        q.cte(
            "enr",
            f"SELECT DISTINCT {KEY}, 1 AS enrolled FROM {c.table} WHERE date_adhesion <= {d}",
        )
        q.reasons.append("CASE WHEN enr.enrolled IS NOT NULL THEN 'already_enrolled' END")
    elif isinstance(c, NoOpposition):
        q.cte(
            "opp",
            f"SELECT DISTINCT {KEY}, 1 AS opposed FROM oppositions "
            f"WHERE date_opposition <= {d} AND canal IN {sql_list(c.channels)}",
        )
        q.reasons.append("CASE WHEN opp.opposed IS NOT NULL THEN 'opposed' END")
    elif isinstance(c, HasContact):
        q.reasons.append("CASE WHEN ct.has_contact IS NULL THEN 'no_contact_record' END")
    else:  # pragma: no cover - the rule model admits nothing else
        raise TypeError(c)


def _gap(q: _Query, name: str, g: NoCare) -> None:
    years = sql_list([q.d.year + y for y in g.years])
    lo = date(q.d.year + min(g.years), 1, 1)
    hi = date(q.d.year + max(g.years), 12, 31)
    # Care lines are filtered by date first (a range the engines can push into the scan).
    lines = (
        f"p.exe_soi_dtd BETWEEN {sql_literal(lo)} AND {sql_literal(hi)} "
        f"AND year(p.exe_soi_dtd) IN {years}"
    )
    if g.source == "specialty":
        sql = (
            f"SELECT DISTINCT {KEY}, 1 AS had FROM er_prs_f p "
            f"WHERE {lines} AND p.pse_spe_cod IN {sql_list([int(x) for x in g.codes])}"
        )
    else:
        table, code = act_table(g)
        sql = (
            f"SELECT DISTINCT p.ben_nir_psa, p.ben_rng_gem, 1 AS had FROM er_prs_f p "
            f"JOIN (SELECT * FROM {table} WHERE {code} IN {sql_list(g.codes)}) a ON {CARE_JOIN} "
            f"WHERE {lines}"
        )
    alias = f"care_{name}"
    q.cte(alias, sql)
    q.extra.append(f"{alias}.had IS NULL AS {name}")


def rule_sql(rule: TargetingRule, as_of: date, *, include_ineligible: bool = False) -> str:
    """The whole rule as one SELECT over views named like the extract's tables."""
    q = _Query(as_of)
    q.cte(
        "ct",
        f"SELECT {KEY}, 1 AS has_contact, min(echelon) AS echelon FROM contacts GROUP BY {KEY}",
    )
    for c in rule.criteria:
        _criterion(q, c, rule.horizon_days)
    for name, g in rule.gaps.items():
        _gap(q, name, g)
    if not any(e.endswith(" AS ald_end_date") for e in q.extra):
        q.extra.append("CAST(NULL AS DATE) AS ald_end_date")
    reasons = f"concat_ws(';', {', '.join(q.reasons)})"
    gaps = list(rule.gaps)
    prio = "false"
    if rule.priority is not None and gaps:
        if rule.priority.all_of:
            prio = " AND ".join(rule.priority.all_of)
        else:
            prio = " OR ".join(rule.priority.any_of or [])
    where = "" if include_ineligible else "WHERE eligible"
    base = "ir_ben_r b"
    if not include_ineligible and q.prefilter:
        # Only people who pass the most selective criterion can be eligible: start from them.
        base = f"(SELECT b0.* FROM ir_ben_r b0 WHERE EXISTS ({q.prefilter})) b"
    gap_cols = "".join(f"{g}, " for g in gaps)
    return f"""
WITH {", ".join(q.ctes)},
decided AS (
    SELECT b.ben_nir_psa, b.ben_rng_gem, {", ".join(q.extra)},
           coalesce(ct.echelon, b.ben_res_dpt) AS echelon,
           {reasons} AS reasons
    FROM {base}
    {" ".join(q.joins)}
),
flagged AS (SELECT *, reasons = '' AS eligible FROM decided)
SELECT ben_nir_psa, ben_rng_gem, eligible, (eligible AND ({prio})) AS priority, {gap_cols}
       ald_end_date, echelon, reasons
FROM flagged
{where}
ORDER BY ben_nir_psa, ben_rng_gem
"""


def run_targeting(
    *,
    rule: TargetingRule,
    extract: Path,
    as_of: date,
    include_ineligible: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
    validate: bool = True,
) -> pa.Table:
    """One row per eligible person (per person of `ir_ben_r` with `include_ineligible`)."""
    own = con is None
    con = con or duckdb.connect()
    try:
        paths = open_extract(con, Path(extract), tables_needed(rule), validate=validate)
        sql = rule_sql(rule, as_of, include_ineligible=include_ineligible)
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise read_failure(e, Path(extract), paths) from None
    finally:
        if own:
            con.close()


def write_csv_atomic(table: pa.Table, path: Path) -> None:
    """The table as CSV (true/false, ISO dates), written whole or not at all, private (0600)."""
    with atomic_path(Path(path)) as tmp:
        con = duckdb.connect()
        try:
            con.register("result", table)
            quoted = str(tmp).replace("'", "''")
            con.execute(f"COPY result TO '{quoted}' (FORMAT csv, HEADER true)")
        finally:
            con.close()
