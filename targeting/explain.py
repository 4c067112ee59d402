"""Why one person is (not) targeted: each criterion with pass/fail and the rows behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from targeting.engine import (
    CARE_JOIN,
    act_table,
    ald_kind_sql,
    rule_sql,
    sql_list,
    sql_literal,
    tables_needed,
)
from targeting.extract import open_extract, read_failure
from targeting.rule import (
    REASONS,
    Age,
    AldRenewal,
    Criterion,
    MedecinTraitant,
    NoCare,
    NoOpposition,
    NotEnrolled,
    TargetingRule,
)
from targeting.schema import SENTINEL_DATE

_SENTINEL = date.fromisoformat(SENTINEL_DATE)


@dataclass
class Check:
    """One criterion or care gap, its verdict and its evidence rows."""

    name: str
    passed: bool
    reason: str | None
    detail: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Explanation:
    """The decision for one person at a run date, and why."""

    ben_nir_psa: str
    ben_rng_gem: int
    as_of: date
    found: bool
    eligible: bool = False
    priority: bool = False
    reasons: list[str] = field(default_factory=list)
    renewal_date: date | None = None
    echelon: str | None = None
    criteria: list[Check] = field(default_factory=list)
    gaps: list[Check] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (dates as ISO strings), for JSON."""

        def plain(v: Any) -> Any:
            if isinstance(v, date):
                return v.isoformat()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        out: dict[str, Any] = plain(asdict(self))
        return out


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _criterion_check(
    con: duckdb.DuckDBPyConnection,
    c: Criterion,
    key: list[Any],
    d: date,
    horizon: int,
    failed: set[str],
    ben: dict[str, Any],
) -> Check:
    kind = c.kind
    day, sentinel = sql_literal(d), sql_literal(_SENTINEL)
    reason = next((r for r in REASONS[kind] if r in failed), None)
    where = "ben_nir_psa = ? AND ben_rng_gem = ?"
    rows: list[dict[str, Any]] = []
    if kind == "alive":
        dcd = ben.get("ben_dcd_dte")
        detail = "no death date" if dcd in (None, _SENTINEL) else f"death date {dcd}"
    elif isinstance(c, Age):
        detail = f"born {ben.get('ben_nai_moi')}/{ben.get('ben_nai_ann')}"
        bounds = [f"≥ {c.min_years}" if c.min_years is not None else ""]
        bounds.append(f"≤ {c.max_years}" if c.max_years is not None else "")
        detail += f"; age required {' '.join(b for b in bounds if b)} years at {d}"
    elif isinstance(c, AldRenewal):
        rows = _rows(
            con,
            f"""SELECT imb_ald_num, med_mtf_cod, imb_etm_nat, imb_ald_dtd, imb_ald_dtf,
                   ({ald_kind_sql(c)}) IS TRUE AS diabetes,
                   imb_etm_nat IN {sql_list(c.etm_nat)} AS ald_nature,
                   imb_ald_dtd <= {sql_literal(d)} AS started,
                   imb_ald_dtf = {sql_literal(_SENTINEL)} AS open_ended
            FROM ir_imb_r WHERE {where} ORDER BY imb_ald_dtd""",
            key,
        )
        counted = [r for r in rows if r["diabetes"] and r["ald_nature"] and r["started"]]
        ends = [r["imb_ald_dtf"] for r in counted if not r["open_ended"]]
        window = f"({d}, {d + timedelta(days=horizon)}]"
        if not counted:
            detail = f"no ALD {c.ald_num} period ({'/'.join(c.icd10_prefixes)}, nature "
            detail += f"{'/'.join(map(str, c.etm_nat))}) started by {d}"
        elif any(r["open_ended"] for r in counted):
            detail = "an ALD period has no end date (1600-01-01): no renewal to prepare"
        else:
            detail = f"renewal date {max(ends)} (latest end of {len(counted)} period(s)); "
            detail += f"horizon {window}"
    elif isinstance(c, MedecinTraitant):
        rows = _rows(
            con,
            f"""SELECT mtt_dep_dte, mtt_fin_dte,
                   mtt_dep_dte <= {day} AND (mtt_fin_dte IS NULL
                     OR mtt_fin_dte = {sentinel} OR mtt_fin_dte >= {day}) AS in_force
            FROM ir_mtt_r WHERE {where} ORDER BY mtt_dep_dte""",
            key,
        )
        detail = f"{sum(r['in_force'] for r in rows)} declaration(s) in force on {d}"
    elif isinstance(c, NotEnrolled):
        rows = _rows(con, f"SELECT date_adhesion FROM {c.table} WHERE {where} ORDER BY 1", key)
        before = [r for r in rows if r["date_adhesion"] <= d]
        detail = f"enrolled on {before[-1]['date_adhesion']}" if before else "not enrolled"
        if rows and not before:
            detail += f" on {d} (enrols on {rows[0]['date_adhesion']})"
    elif isinstance(c, NoOpposition):
        rows = _rows(
            con, f"SELECT date_opposition, canal FROM oppositions WHERE {where} ORDER BY 1", key
        )
        hits = [r for r in rows if r["canal"] in c.channels and r["date_opposition"] <= d]
        detail = (
            f"opposed ({hits[0]['canal']}) on {hits[0]['date_opposition']}"
            if hits
            else f"no opposition on {', '.join(c.channels)} by {d}"
        )
    elif kind == "has_contact":
        rows = _rows(
            con,
            f"""SELECT echelon, caisse, compte_ameli, telephone IS NOT NULL AS has_phone,
                   email IS NOT NULL AS has_email, adresse_l6 IS NOT NULL AS has_address
            FROM contacts WHERE {where}""",
            key,
        )
        detail = "in the fund's contact file" if rows else "not in the fund's contact file"
    else:
        detail = ""
    return Check(name=kind, passed=reason is None, reason=reason, detail=detail, rows=rows)


def _gap_check(
    con: duckdb.DuckDBPyConnection, name: str, g: NoCare, key: list[Any], d: date, gap: bool
) -> Check:
    years = sorted(d.year + y for y in g.years)
    if g.source == "specialty":
        sql = f"""SELECT p.exe_soi_dtd AS date, CAST(p.pse_spe_cod AS VARCHAR) AS code,
                     p.pse_spe_cod AS specialty
                  FROM er_prs_f p WHERE p.ben_nir_psa = ? AND p.ben_rng_gem = ?
                    AND p.pse_spe_cod IN {sql_list([int(x) for x in g.codes])}"""
    else:
        table, code = act_table(g)
        sql = f"""SELECT p.exe_soi_dtd AS date, a.{code} AS code, p.pse_spe_cod AS specialty
                  FROM er_prs_f p JOIN {table} a ON {CARE_JOIN}
                  WHERE p.ben_nir_psa = ? AND p.ben_rng_gem = ?
                    AND a.{code} IN {sql_list(g.codes)}"""
    rows = _rows(con, f"SELECT * FROM ({sql}) ORDER BY date DESC LIMIT 5", key)
    for r in rows:
        r["in_window"] = r["date"].year in years
    span = f"{years[0]}" if len(years) == 1 else f"{years[0]}–{years[-1]}"
    inside = [r for r in rows if r["in_window"]]
    if inside:
        detail = f"last in {span}: {inside[0]['date']} ({inside[0]['code']})"
    elif rows:
        detail = f"none in {span}; the last one was on {rows[0]['date']} ({rows[0]['code']})"
    else:
        detail = f"none in {span}, none in the extract"
    return Check(name=name, passed=not gap, reason=name if gap else None, detail=detail, rows=rows)


def explain_person(
    *, rule: TargetingRule, extract: Path, as_of: date, ben_nir_psa: str, ben_rng_gem: int
) -> Explanation:
    """The rule's decision for one person and the rows that support each part of it."""
    con = duckdb.connect()
    paths: dict[str, Path] = {}
    try:
        paths = open_extract(con, Path(extract), tables_needed(rule))
        return _explain(con, rule, as_of, ben_nir_psa, ben_rng_gem)
    except duckdb.Error as e:
        raise read_failure(e, Path(extract), paths) from None
    finally:
        con.close()


def _explain(
    con: duckdb.DuckDBPyConnection,
    rule: TargetingRule,
    as_of: date,
    ben_nir_psa: str,
    ben_rng_gem: int,
) -> Explanation:
    """The explanation, from the typed views of an opened extract."""
    key = [ben_nir_psa, ben_rng_gem]
    decision = _rows(
        con,
        f"SELECT * FROM ({rule_sql(rule, as_of, include_ineligible=True)}) "
        "WHERE ben_nir_psa = ? AND ben_rng_gem = ?",
        key,
    )
    out = Explanation(ben_nir_psa, ben_rng_gem, as_of, found=bool(decision))
    if not decision:
        return out
    row = decision[0]
    ben = _rows(con, "SELECT * FROM ir_ben_r WHERE ben_nir_psa = ? AND ben_rng_gem = ?", key)[0]
    out.eligible, out.priority = bool(row["eligible"]), bool(row["priority"])
    out.reasons = [r for r in (row["reasons"] or "").split(";") if r]
    out.renewal_date, out.echelon = row["ald_end_date"], row["echelon"]
    failed = set(out.reasons)
    out.criteria = [
        _criterion_check(con, c, key, as_of, rule.horizon_days, failed, ben)
        for c in rule.criteria
    ]
    out.gaps = [
        _gap_check(con, name, g, key, as_of, bool(row[name])) for name, g in rule.gaps.items()
    ]
    return out
