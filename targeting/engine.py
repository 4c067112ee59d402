"""The targeting rule compiled to one SQL query and run in DuckDB over the extract's files.

The query reads views named like the tables (see `targeting.extract`) and keeps to SQL that
DuckDB and Spark SQL both understand, so the same text can run on either engine. Every
parameter (run date, horizon, code lists) is a literal computed here from the rule.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from targeting.extract import open_extract, read_failure
from targeting.files import atomic_path
from targeting.rule import (
    Age,
    AldInForce,
    AldRenewal,
    Alive,
    AllOf,
    AnyOf,
    Care,
    HasContact,
    MedecinTraitant,
    NoCare,
    Node,
    NoOpposition,
    Not,
    NotEnrolled,
    Residence,
    Sex,
    Source,
    TargetingRule,
    Window,
)
from targeting.schema import JOIN_KEYS, SENTINEL_DATE, Table, programme_table

KEY = "ben_nir_psa, ben_rng_gem"


def sql_literal(v: str | int | date) -> str:
    if isinstance(v, date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("'", "''") + "'"


def sql_list(values: list[str] | list[int]) -> str:
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"


# A care line (p) and its lab, CCAM or pharmacy rows (a) are the same act when all 9 keys match.
CARE_JOIN = " AND ".join(f"p.{k} = a.{k}" for k in JOIN_KEYS)


def ald_kind_sql(c: AldRenewal) -> str:
    """The condition an ALD period must meet to be of the rule's kind (number or ICD-10)."""
    return " OR ".join(
        [f"imb_ald_num = {c.ald_num}"]
        + [f"med_mtf_cod LIKE {sql_literal(p + '%')}" for p in c.icd10_prefixes]
    )


def ald_in_force_sql(c: AldInForce, d: date) -> str:
    """The condition an ALD period meets when it is of the criterion's kind and in force at D."""
    sentinel = sql_literal(date.fromisoformat(SENTINEL_DATE))
    day = sql_literal(d)
    kinds = [f"imb_ald_num IN {sql_list(c.ald_nums)}"] if c.ald_nums else []
    kinds += [f"med_mtf_cod LIKE {sql_literal(p + '%')}" for p in c.icd10_prefixes]
    parts = [f"({' OR '.join(kinds)})"] if kinds else []
    if c.etm_nat:
        parts.append(f"imb_etm_nat IN {sql_list(c.etm_nat)}")
    parts.append(f"imb_ald_dtd <= {day}")
    parts.append(f"(imb_ald_dtf = {sentinel} OR imb_ald_dtf >= {day})")
    return " AND ".join(parts)


def act_table(g: NoCare | Care) -> tuple[str, str]:
    """The act table of a lab, CCAM or drug care act, and its code column."""
    return {
        "lab": ("er_bio_f", "bio_prs_ide"),
        "ccam": ("er_cam_f", "cam_prs_ide"),
        "drug": ("er_pha_f", "pha_prs_c13"),
    }[g.source]


def months_before(d: date, n: int) -> date:
    """D minus n calendar months (the last day of the month when D's day does not exist)."""
    y, m = divmod(d.year * 12 + d.month - 1 - n, 12)
    last = calendar.monthrange(y, m + 1)[1]
    return date(y, m + 1, min(d.day, last))


def window_bounds(
    w: Window, d: date, parameters: dict[str, date]
) -> tuple[date, date, list[int] | None]:
    """The first and last care dates of a window (both included), and its calendar years
    when it is given in years. A window never ends after D."""
    if w.years is not None:
        lo = date(d.year + min(w.years), 1, 1)
        hi = min(date(d.year + max(w.years), 12, 31), d)
        return lo, hi, sorted(d.year + y for y in w.years)
    if w.days is not None:
        return d - timedelta(days=w.days - 1), d, None
    if w.months is not None:
        return months_before(d, w.months) + timedelta(days=1), d, None
    assert w.since is not None
    return parameters[w.since], d, None


def care_sql(source: Source, codes: list[str], lo: date, hi: date, years: list[int] | None) -> str:
    """The people with a care act of the source and codes dated in [lo, hi] (and in `years`)."""
    # Care lines are filtered by date first (a range the engines can push into the scan).
    lines = f"p.exe_soi_dtd BETWEEN {sql_literal(lo)} AND {sql_literal(hi)}"
    if years is not None:
        lines += f" AND year(p.exe_soi_dtd) IN {sql_list(years)}"
    if source == "specialty":
        return (
            f"SELECT DISTINCT {KEY}, 1 AS had FROM er_prs_f p "
            f"WHERE {lines} AND p.pse_spe_cod IN {sql_list([int(x) for x in codes])}"
        )
    if source == "drug":
        atc = " OR ".join(f"r.pha_atc_c07 LIKE {sql_literal(c + '%')}" for c in codes)
        return (
            "SELECT DISTINCT p.ben_nir_psa, p.ben_rng_gem, 1 AS had FROM er_prs_f p "
            f"JOIN er_pha_f a ON {CARE_JOIN} "
            "JOIN ir_pha_r r ON r.pha_cip_c13 = a.pha_prs_c13 "
            f"WHERE ({atc}) AND {lines}"
        )
    table, code = {"lab": ("er_bio_f", "bio_prs_ide"), "ccam": ("er_cam_f", "cam_prs_ide")}[source]
    return (
        f"SELECT DISTINCT p.ben_nir_psa, p.ben_rng_gem, 1 AS had FROM er_prs_f p "
        f"JOIN (SELECT * FROM {table} WHERE {code} IN {sql_list(codes)}) a ON {CARE_JOIN} "
        f"WHERE {lines}"
    )


def output_columns(rule: TargetingRule) -> list[str]:
    """The columns of a targeting result, in order (`birth_date` with exact ages only)."""
    return [
        "ben_nir_psa",
        "ben_rng_gem",
        "eligible",
        "priority",
        *rule.gaps,
        "ald_end_date",
        *(["birth_date"] if rule.exact_ages else []),
        "echelon",
        "reasons",
    ]


_SOURCE_TABLES: dict[str, tuple[str, ...]] = {
    "lab": ("er_prs_f", "er_bio_f"),
    "ccam": ("er_prs_f", "er_cam_f"),
    "specialty": ("er_prs_f",),
    "drug": ("er_prs_f", "er_pha_f", "ir_pha_r"),
}
_KIND_TABLES: dict[type, str] = {
    AldRenewal: "ir_imb_r",
    AldInForce: "ir_imb_r",
    MedecinTraitant: "ir_mtt_r",
    NoOpposition: "oppositions",
}


def tables_needed(rule: TargetingRule) -> list[str]:
    """The extract tables a rule reads."""
    need = {"ir_ben_r", "contacts"}
    for c in rule.nodes():
        if type(c) in _KIND_TABLES:
            need.add(_KIND_TABLES[type(c)])
        elif isinstance(c, NotEnrolled):
            need.add(c.table)
        elif isinstance(c, Care):
            need.update(_SOURCE_TABLES[c.source])
    for g in rule.gaps.values():
        need.update(_SOURCE_TABLES[g.source])
    return sorted(need)


def table_specs(rule: TargetingRule) -> dict[str, Table]:
    """The tables the rule names itself (programme tables), described by key and date column."""
    return {
        c.table: programme_table(c.table, c.date_column)
        for c in rule.nodes()
        if isinstance(c, NotEnrolled)
    }


class _Query:
    """Collects the CTEs and the reason expressions of a rule."""

    def __init__(self, rule: TargetingRule, as_of: date) -> None:
        self.rule = rule
        self.d = as_of
        self.ctes: list[str] = []
        self.names: set[str] = set()
        self.joins: list[str] = []
        self.reasons: list[str] = []
        self.extra: list[str] = []
        self.prefilter = ""

    def cte(self, name: str, sql: str, join: bool = True) -> str:
        """Adds a CTE (renamed `name_2`, `name_3`… when the name is taken); its name."""
        n, base = 1, name
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        self.ctes.append(f"{name} AS ({sql})")
        if join:
            self.joins.append(
                f"LEFT JOIN {name} ON b.ben_nir_psa = {name}.ben_nir_psa "
                f"AND b.ben_rng_gem = {name}.ben_rng_gem"
            )
        return name


_YEAR = "TRY_CAST(b.ben_nai_ann AS INTEGER)"
_MONTH = "TRY_CAST(b.ben_nai_moi AS INTEGER)"
_BIRTH_UNKNOWN = (
    f"({_YEAR} IS NULL OR {_YEAR} = 1600 OR {_MONTH} IS NULL OR {_MONTH} NOT BETWEEN 1 AND 12)"
)
BIRTH_DATE = (
    f"CASE WHEN {_BIRTH_UNKNOWN} THEN CAST(NULL AS DATE) "
    "ELSE CAST(concat(b.ben_nai_ann, '-', b.ben_nai_moi, '-01') AS DATE) END"
)


def _age(q: _Query, c: Age) -> str:
    age = f"({q.d.year} - {_YEAR} - CASE WHEN {q.d.month} < {_MONTH} THEN 1 ELSE 0 END)"
    parts = [f"WHEN {_BIRTH_UNKNOWN} THEN 'birth_date_unknown'"]
    if c.min_years is not None:
        parts.append(f"WHEN {age} < {c.min_years} THEN 'under_age'")
    if c.max_years is not None:
        parts.append(f"WHEN {age} > {c.max_years} THEN 'over_age'")
    if c.exact_years:
        parts.append(f"WHEN {age} NOT IN {sql_list(c.exact_years)} THEN 'not_exact_age'")
    return f"CASE {' '.join(parts)} END"


def _ald_renewal(q: _Query, c: AldRenewal, top: bool) -> str:
    d = sql_literal(q.d)
    sentinel = sql_literal(date.fromisoformat(SENTINEL_DATE))
    ald = q.cte(
        "ald",
        f"""SELECT {KEY}, count(*) AS ald_periods,
               max(CASE WHEN imb_ald_dtf = {sentinel} THEN 1 ELSE 0 END) AS ald_open,
               max(CASE WHEN imb_ald_dtf <> {sentinel} THEN imb_ald_dtf END) AS ald_end_date
        FROM ir_imb_r
        WHERE ({ald_kind_sql(c)}) AND imb_etm_nat IN {sql_list(c.etm_nat)}
          AND imb_ald_dtd <= {d}
        GROUP BY {KEY}""",
    )
    q.extra.append(f"{ald}.ald_end_date AS ald_end_date")
    assert q.rule.horizon_days is not None  # the rule's validator requires it
    end = sql_literal(q.d + timedelta(days=q.rule.horizon_days))
    if top:
        q.prefilter = (
            f"SELECT 1 FROM {ald} a0 WHERE a0.ben_nir_psa = b0.ben_nir_psa "
            f"AND a0.ben_rng_gem = b0.ben_rng_gem AND a0.ald_open = 0 "
            f"AND a0.ald_end_date > {d} AND a0.ald_end_date <= {end}"
        )
    return (
        f"CASE WHEN {ald}.ald_periods IS NULL THEN 'no_ald_period' "
        f"WHEN {ald}.ald_open = 1 THEN 'ald_open_ended' "
        f"WHEN NOT ({ald}.ald_end_date > {d} AND {ald}.ald_end_date <= {end}) "
        "THEN 'renewal_outside_horizon' END"
    )


def _medecin_traitant(q: _Query, c: MedecinTraitant) -> str:
    d = sql_literal(q.d)
    sentinel = sql_literal(date.fromisoformat(SENTINEL_DATE))
    mtt = q.cte(
        "mtt",
        f"""SELECT DISTINCT {KEY}, 1 AS has_mtt FROM ir_mtt_r
        WHERE mtt_dep_dte <= {d}
          AND (mtt_fin_dte IS NULL OR mtt_fin_dte = {sentinel} OR mtt_fin_dte >= {d})""",
    )
    if c.declared:
        return f"CASE WHEN {mtt}.has_mtt IS NULL THEN 'no_medecin_traitant' END"
    return f"CASE WHEN {mtt}.has_mtt IS NOT NULL THEN 'has_medecin_traitant' END"


def _care(q: _Query, c: Care) -> str:
    lo, hi, years = window_bounds(c.window, q.d, q.rule.parameters)
    alias = q.cte(f"crit_{c.id}", care_sql(c.source, c.codes, lo, hi, years))
    if c.present:
        return f"CASE WHEN {alias}.had IS NULL THEN {sql_literal('care_missing:' + c.id)} END"
    return f"CASE WHEN {alias}.had IS NOT NULL THEN {sql_literal('care_found:' + c.id)} END"


def _leaf(q: _Query, c: Node, top: bool) -> str:
    """The reason expression of one criterion: a code (or codes) when it fails, else NULL."""
    d = sql_literal(q.d)
    sentinel = sql_literal(date.fromisoformat(SENTINEL_DATE))
    if isinstance(c, Alive):
        return (
            f"CASE WHEN b.ben_dcd_dte IS NOT NULL AND b.ben_dcd_dte <> {sentinel} "
            f"AND b.ben_dcd_dte <= {d} THEN 'deceased' END"
        )
    if isinstance(c, Age):
        return _age(q, c)
    if isinstance(c, Sex):
        return (
            f"CASE WHEN b.ben_sex_cod IS NULL OR b.ben_sex_cod NOT IN {sql_list(c.codes)} "
            "THEN 'sex_not_targeted' END"
        )
    if isinstance(c, Residence):
        return (
            f"CASE WHEN b.ben_res_dpt IS NULL OR b.ben_res_dpt NOT IN {sql_list(c.departements)} "
            "THEN 'residence_not_targeted' END"
        )
    if isinstance(c, AldRenewal):
        return _ald_renewal(q, c, top)
    if isinstance(c, AldInForce):
        alf = q.cte(
            "ald_in_force",
            f"SELECT DISTINCT {KEY}, 1 AS in_force FROM ir_imb_r WHERE {ald_in_force_sql(c, q.d)}",
        )
        return f"CASE WHEN {alf}.in_force IS NULL THEN 'no_ald_in_force' END"
    if isinstance(c, MedecinTraitant):
        return _medecin_traitant(q, c)
    if isinstance(c, Care):
        return _care(q, c)
    if isinstance(c, NotEnrolled):
        enr = q.cte(
            "enr",
            f"SELECT DISTINCT {KEY}, 1 AS enrolled FROM {c.table} WHERE {c.date_column} <= {d}",
        )
        return f"CASE WHEN {enr}.enrolled IS NOT NULL THEN 'already_enrolled' END"
    if isinstance(c, NoOpposition):
        opp = q.cte(
            "opp",
            f"SELECT DISTINCT {KEY}, 1 AS opposed FROM oppositions "
            f"WHERE date_opposition <= {d} AND canal IN {sql_list(c.channels)}",
        )
        return f"CASE WHEN {opp}.opposed IS NOT NULL THEN 'opposed' END"
    if isinstance(c, HasContact):
        return "CASE WHEN ct.has_contact IS NULL THEN 'no_contact_record' END"
    raise TypeError(c)  # pragma: no cover - the rule model admits nothing else


def _node(q: _Query, c: Node, top: bool = False) -> str:
    """The reason expression of a criterion, composites included: NULL when it holds.

    `all_of` gives its failing members' reasons; a failing `any_of` the reasons of all its
    branches; a `not` whose inner criterion holds `excluded:<inner kind>`.
    """
    if isinstance(c, AllOf):
        parts = [_node(q, m) for m in c.all_of]
        return f"NULLIF(concat_ws(';', {', '.join(parts)}), '')"
    if isinstance(c, AnyOf):
        parts = [_node(q, m) for m in c.any_of]
        held = " OR ".join(f"({p}) IS NULL" for p in parts)
        return f"CASE WHEN {held} THEN NULL ELSE concat_ws(';', {', '.join(parts)}) END"
    if isinstance(c, Not):
        inner = _node(q, c.not_)
        return f"CASE WHEN ({inner}) IS NULL THEN {sql_literal('excluded:' + c.not_.kind)} END"
    return _leaf(q, c, top)


def _gap(q: _Query, name: str, g: NoCare) -> None:
    lo, hi, years = window_bounds(g.span, q.d, q.rule.parameters)
    alias = q.cte(f"care_{name}", care_sql(g.source, g.codes, lo, hi, years))
    q.extra.append(f"{alias}.had IS NULL AS {name}")


def _priority(q: _Query, rule: TargetingRule) -> str:
    p = rule.priority
    if p is None:
        return "false"
    if p.when is not None:
        # Judged with the person's row and CTEs in scope (`decided`), read in the last SELECT.
        q.extra.append(f"({_node(q, p.when)}) IS NULL AS prio_when")
        return "prio_when"
    if not rule.gaps:
        return "false"
    if p.all_of:
        return " AND ".join(p.all_of)
    return " OR ".join(p.any_of or [])


def rule_sql(rule: TargetingRule, as_of: date, *, include_ineligible: bool = False) -> str:
    """The whole rule as one SELECT over views named like the extract's tables."""
    q = _Query(rule, as_of)
    q.cte(
        "ct",
        f"SELECT {KEY}, 1 AS has_contact, min(echelon) AS echelon FROM contacts GROUP BY {KEY}",
    )
    for c in rule.criteria:
        q.reasons.append(_node(q, c, top=True))
    for name, g in rule.gaps.items():
        _gap(q, name, g)
    prio = _priority(q, rule)
    if not any(e.endswith(" AS ald_end_date") for e in q.extra):
        q.extra.append("CAST(NULL AS DATE) AS ald_end_date")
    birth = ", birth_date" if rule.exact_ages else ""
    if birth:
        q.extra.append(f"{BIRTH_DATE} AS birth_date")
    reasons = f"concat_ws(';', {', '.join(q.reasons)})"
    gaps = list(rule.gaps)
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
       ald_end_date{birth}, echelon, reasons
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
        paths = open_extract(
            con, Path(extract), tables_needed(rule), validate=validate, specs=table_specs(rule)
        )
        sql = rule_sql(rule, as_of, include_ineligible=include_ineligible)
        try:
            return distinct_reasons(con.sql(sql).to_arrow_table())
        except duckdb.Error as e:
            raise read_failure(e, Path(extract), paths) from None
    finally:
        if own:
            con.close()


def distinct_reasons(table: pa.Table) -> pa.Table:
    """Each reason once per person, in the order first given.

    Branches of an `any_of` may fail for the same reason (`under_age` in both): SQL that both
    DuckDB and Spark run has no order-keeping de-duplication, so it is done on the result.
    """
    i = table.column_names.index("reasons")
    values = table.column(i).to_pylist()
    if not any(v and ";" in v for v in values):
        return table
    fixed = [";".join(dict.fromkeys(v.split(";"))) if v and ";" in v else v for v in values]
    return table.set_column(i, "reasons", pa.array(fixed, type=table.schema.field(i).type))


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


def node_reasons_sql(rule: TargetingRule, as_of: date, nodes: list[Node]) -> str:
    """For every person, the reasons of each given criterion (`r0`, `r1`…; NULL when it holds).

    The same compilation as `rule_sql`, one column per criterion: `relance explain` reads
    the verdict of each member of a composition from it.
    """
    q = _Query(rule, as_of)
    q.cte("ct", f"SELECT {KEY}, 1 AS has_contact FROM contacts GROUP BY {KEY}")
    cols = [f"{_node(q, n)} AS r{i}" for i, n in enumerate(nodes)]
    return (
        f"WITH {', '.join(q.ctes)} SELECT b.ben_nir_psa, b.ben_rng_gem, {', '.join(cols)} "
        f"FROM ir_ben_r b {' '.join(q.joins)}"
    )
