"""Why one person is (not) targeted: each criterion with pass/fail and the rows behind it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from targeting.engine import (
    CARE_JOIN,
    ald_in_force_sql,
    ald_kind_sql,
    node_reasons_sql,
    rule_sql,
    sql_list,
    sql_literal,
    table_specs,
    tables_needed,
    window_bounds,
)
from targeting.extract import open_extract, read_failure
from targeting.rule import (
    Age,
    AldInForce,
    AldRenewal,
    AllOf,
    AnyOf,
    Care,
    MedecinTraitant,
    NoCare,
    Node,
    NoOpposition,
    Not,
    NotEnrolled,
    Source,
    TargetingRule,
    Window,
    walk,
)
from targeting.schema import JOIN_KEYS, SENTINEL_DATE

_SENTINEL = date.fromisoformat(SENTINEL_DATE)


@dataclass
class Check:
    """One criterion or care gap, its verdict and its evidence rows."""

    name: str
    passed: bool
    reason: str | None
    detail: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    # The campaign's own words for a `care` criterion; the members of a composition.
    label: str | None = None
    children: list[Check] = field(default_factory=list)


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
    # The `priority: {when: …}` criterion, judged like the others.
    priority_rule: Check | None = None

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


# Every evidence query names its person through these two tokens, so one text serves one
# person (bound parameters) or a whole admitted set at once (a semi-join on `_keys`).
# Up to this many people, their keys are written in the narrowing query as literals.
_LITERAL_KEYS = 5000
_WHO = "@who@"
_KEYS = "@keys@"
_ONE = "{a}ben_nir_psa = ? AND {a}ben_rng_gem = ?"
_MANY = (
    "EXISTS (SELECT 1 FROM _keys k WHERE k.ben_nir_psa = {a}ben_nir_psa"
    " AND k.ben_rng_gem = {a}ben_rng_gem)"
)


def _who(alias: str = "") -> str:
    return _WHO.replace("@", f"@{alias}", 1) if alias else _WHO


def _keys(alias: str = "") -> str:
    return _KEYS.replace("@", f"@{alias}", 1) if alias else _KEYS


def _bind(sql: str, clause: str) -> str:
    """The query with its person tokens made concrete (`@p.who@` is the clause on alias p)."""
    sql = re.sub(r"@(\w+\.)?who@", lambda m: clause.format(a=m.group(1) or ""), sql)
    return re.sub(
        r"@(\w+\.)?keys@",
        lambda m: f"{m.group(1) or ''}ben_nir_psa AS _nir, {m.group(1) or ''}ben_rng_gem AS _rng",
        sql,
    )


class _Rows:
    """The rows behind one person's checks: asked one query at a time (the reference)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, key: list[Any]) -> None:
        self.con, self.key = con, key

    def __call__(self, sql: str) -> list[dict[str, Any]]:
        rows = _rows(self.con, _bind(sql, _ONE), self.key * sql.count("who@"))
        for r in rows:
            del r["_nir"], r["_rng"]
        return rows


class _BatchRows(_Rows):
    """The same rows for every person of `_keys`: each distinct query runs once for all of
    them, and a person reads their share (fresh copies: checks mark the rows they read)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, cache: dict[str, Any]) -> None:
        super().__init__(con, [])
        self.cache = cache

    def __call__(self, sql: str) -> list[dict[str, Any]]:
        if sql not in self.cache:
            groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for r in _rows(self.con, _bind(sql, _MANY), []):
                groups.setdefault((r.pop("_nir"), r.pop("_rng")), []).append(r)
            self.cache[sql] = groups
        return [dict(r) for r in self.cache[sql].get(tuple(self.key), [])]


@dataclass
class _Ctx:
    """What every check of one person reads."""

    rows: _Rows
    rule: TargetingRule
    d: date
    ben: dict[str, Any]
    verdicts: dict[int, str | None]  # id(node) -> its reasons (None when it holds)


def _fr(day: object) -> str:
    """A date as JJ/MM/AAAA (a value that is no date is shown as it is)."""
    return day.strftime("%d/%m/%Y") if isinstance(day, date) else str(day)


def _age_detail(c: Age, x: _Ctx) -> str:
    detail = f"né(e) en {x.ben.get('ben_nai_moi')}/{x.ben.get('ben_nai_ann')}"
    bounds = [f"≥ {c.min_years}" if c.min_years is not None else ""]
    bounds.append(f"≤ {c.max_years}" if c.max_years is not None else "")
    if c.min_years is not None or c.max_years is not None:
        detail += f" ; âge exigé {' '.join(b for b in bounds if b)} ans au {_fr(x.d)}"
    if c.exact_years:
        ages = ", ".join(map(str, c.exact_years))
        detail += f" ; âge exact exigé au {x.d} : {ages} ans (anniversaire du mois de naissance)"
    return detail


def _ald_renewal(c: AldRenewal, x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    rows = x.rows(
        f"""SELECT {_keys()}, imb_ald_num, med_mtf_cod, imb_etm_nat, imb_ald_dtd, imb_ald_dtf,
               ({ald_kind_sql(c)}) IS TRUE AS diabetes,
               imb_etm_nat IN {sql_list(c.etm_nat)} AS ald_nature,
               imb_ald_dtd <= {sql_literal(x.d)} AS started,
               imb_ald_dtf = {sql_literal(_SENTINEL)} AS open_ended
        FROM ir_imb_r WHERE {_who()} ORDER BY imb_ald_dtd"""
    )
    counted = [r for r in rows if r["diabetes"] and r["ald_nature"] and r["started"]]
    ends = [r["imb_ald_dtf"] for r in counted if not r["open_ended"]]
    window = f"du {_fr(x.d)} (exclu) au {_fr(x.d + timedelta(days=x.rule.horizon_days or 0))}"
    if not counted:
        detail = f"aucune période d'ALD {c.ald_num} ({'/'.join(c.icd10_prefixes)}, nature "
        detail += f"{'/'.join(map(str, c.etm_nat))}) commencée au {_fr(x.d)}"
    elif any(r["open_ended"] for r in counted):
        detail = "une période d'ALD n'a pas de date de fin (1600-01-01) : pas de renouvellement"
    else:
        detail = f"date de renouvellement {_fr(max(ends))} (dernière fin de {len(counted)} "
        detail += f"période(s)) ; horizon {window}"
    return detail, rows


def _ald_in_force(c: AldInForce, x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    rows = x.rows(
        f"""SELECT {_keys()}, imb_ald_num, med_mtf_cod, imb_etm_nat, imb_ald_dtd, imb_ald_dtf,
               ({ald_in_force_sql(c, x.d)}) IS TRUE AS in_force
        FROM ir_imb_r WHERE {_who()} ORDER BY imb_ald_dtd"""
    )
    kinds = [f"ALD {'/'.join(map(str, c.ald_nums))}"] if c.ald_nums else []
    kinds += [f"CIM-10 {'/'.join(c.icd10_prefixes)}"] if c.icd10_prefixes else []
    what = " ou ".join(kinds) or "toute ALD"
    if c.etm_nat:
        what += f", nature {'/'.join(map(str, c.etm_nat))}"
    n = sum(bool(r["in_force"]) for r in rows)
    detail = f"{n} période(s) d'ALD en vigueur au {x.d} ({what}) sur {len(rows)} connue(s)"
    return detail, rows


def _medecin_traitant(c: MedecinTraitant, x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    day, sentinel = sql_literal(x.d), sql_literal(_SENTINEL)
    rows = x.rows(
        f"""SELECT {_keys()}, mtt_dep_dte, mtt_fin_dte,
               mtt_dep_dte <= {day} AND (mtt_fin_dte IS NULL
                 OR mtt_fin_dte = {sentinel} OR mtt_fin_dte >= {day}) AS in_force
        FROM ir_mtt_r WHERE {_who()} ORDER BY mtt_dep_dte"""
    )
    n = sum(r["in_force"] for r in rows)
    if c.declared:
        return f"{n} déclaration(s) de médecin traitant en vigueur au {_fr(x.d)}", rows
    want = "la campagne vise les personnes sans médecin traitant déclaré"
    return f"{n} déclaration(s) de médecin traitant en vigueur au {x.d} ; {want}", rows


def _not_enrolled(c: NotEnrolled, x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    rows = x.rows(
        f"SELECT {_keys()}, {c.date_column} AS date_adhesion FROM {c.table} "
        f"WHERE {_who()} ORDER BY date_adhesion"
    )
    before = [r for r in rows if r["date_adhesion"] <= x.d]
    detail = (
        f"adhérent(e) depuis le {_fr(before[-1]['date_adhesion'])}" if before else "non adhérent(e)"
    )
    if rows and not before:
        detail += f" au {_fr(x.d)} (adhère le {_fr(rows[0]['date_adhesion'])})"
    return detail, rows


def _no_opposition(c: NoOpposition, x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    rows = x.rows(
        f"SELECT {_keys()}, date_opposition, canal FROM oppositions WHERE {_who()} "
        "ORDER BY date_opposition"
    )
    hits = [r for r in rows if r["canal"] in c.channels and r["date_opposition"] <= x.d]
    detail = (
        f"opposition ({hits[0]['canal']}) le {_fr(hits[0]['date_opposition'])}"
        if hits
        else f"aucune opposition ({', '.join(c.channels)}) au {_fr(x.d)}"
    )
    return detail, rows


def _has_contact(x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    rows = x.rows(
        f"""SELECT {_keys()}, echelon, caisse, compte_ameli, telephone IS NOT NULL AS has_phone,
               email IS NOT NULL AS has_email, adresse_l6 IS NOT NULL AS has_address
        FROM contacts WHERE {_who()}"""
    )
    return (
        "dans le fichier de contacts de la caisse"
        if rows
        else "absent(e) du fichier de contacts de la caisse"
    ), rows


def _acts_sql(source: Source, codes: list[str]) -> str:
    """Every care act of the source and codes of the person (any date): date, code, specialty."""
    person, key = _who("p."), _keys("p.")
    if source == "specialty":
        return f"""SELECT {key}, p.exe_soi_dtd AS date, CAST(p.pse_spe_cod AS VARCHAR) AS code,
                      p.pse_spe_cod AS specialty
                   FROM er_prs_f p WHERE {person}
                     AND p.pse_spe_cod IN {sql_list([int(x) for x in codes])}"""
    if source == "drug":
        atc = " OR ".join(f"r.pha_atc_c07 LIKE {sql_literal(c + '%')}" for c in codes)
        return f"""SELECT {key}, p.exe_soi_dtd AS date, r.pha_atc_c07 AS code,
                      p.pse_spe_cod AS specialty, a.pha_prs_c13 AS cip13
                   FROM er_prs_f p JOIN er_pha_f a ON {CARE_JOIN}
                   JOIN ir_pha_r r ON r.pha_cip_c13 = a.pha_prs_c13
                   WHERE {person} AND ({atc})"""
    table, code = ("er_bio_f", "bio_prs_ide") if source == "lab" else ("er_cam_f", "cam_prs_ide")
    return f"""SELECT {key}, p.exe_soi_dtd AS date, a.{code} AS code, p.pse_spe_cod AS specialty
               FROM er_prs_f p JOIN {table} a ON {CARE_JOIN}
               WHERE {person} AND a.{code} IN {sql_list(codes)}"""


def _acts_in_window(
    x: _Ctx, source: Source, codes: list[str], w: Window
) -> tuple[list[dict[str, Any]], date, date, list[int] | None]:
    """The person's last five acts, each marked `in_window`, and the window's bounds."""
    lo, hi, years = window_bounds(w, x.d, x.rule.parameters)
    rows = x.rows(f"SELECT * FROM ({_acts_sql(source, codes)}) ORDER BY date DESC")
    for r in rows:
        r["in_window"] = lo <= r["date"] <= hi and (years is None or r["date"].year in years)
    inside = [r for r in rows if r["in_window"]]
    # The evidence: the last acts of the window first, then the last ones outside it.
    shown = inside[:5] + [r for r in rows if not r["in_window"]][: max(0, 5 - len(inside))]
    return shown, lo, hi, years


def _care(c: Care, x: _Ctx) -> tuple[str, list[dict[str, Any]]]:
    rows, lo, hi, _ = _acts_in_window(x, c.source, c.codes, c.window)
    inside = [r for r in rows if r["in_window"]]
    what = c.label or c.id
    span = f"du {lo} au {hi}"
    if inside:
        found = f"acte trouvé {span} : le {inside[0]['date']} ({inside[0]['code']})"
    elif rows:
        found = f"aucun acte {span} ; le dernier le {rows[0]['date']} ({rows[0]['code']})"
    else:
        found = f"aucun acte {span}, aucun dans l'extraction"
    want = "exigé" if c.present else "exclut de la campagne s'il est trouvé"
    return f"« {what} » ({want}) : {found}", rows


def _composite(c: Node, x: _Ctx, reason: str | None) -> tuple[str, list[Check]]:
    if isinstance(c, AllOf):
        kids = [_check(m, x) for m in c.all_of]
        held = sum(k.passed for k in kids)
        return f"toutes les conditions : {held} vraie(s) sur {len(kids)}", kids
    if isinstance(c, AnyOf):
        kids = [_check(m, x) for m in c.any_of]
        held = sum(k.passed for k in kids)
        return f"au moins une condition : {held} vraie(s) sur {len(kids)}", kids
    assert isinstance(c, Not)
    kids = [_check(c.not_, x)]
    if reason is None:
        return "exclusion : la condition est fausse, la personne n'est pas exclue", kids
    return "exclusion : la condition est vraie, la personne est exclue", kids


def _check(c: Node, x: _Ctx) -> Check:
    """One criterion's verdict (from the compiled rule) and its evidence, in words."""
    reason = x.verdicts[id(c)]
    rows: list[dict[str, Any]] = []
    kids: list[Check] = []
    label = None
    if isinstance(c, AllOf | AnyOf | Not):
        detail, kids = _composite(c, x, reason)
    elif c.kind == "alive":
        dcd = x.ben.get("ben_dcd_dte")
        detail = "pas de date de décès" if dcd in (None, _SENTINEL) else f"décès le {_fr(dcd)}"
    elif isinstance(c, Age):
        detail = _age_detail(c, x)
    elif isinstance(c, AldRenewal):
        detail, rows = _ald_renewal(c, x)
    elif isinstance(c, AldInForce):
        detail, rows = _ald_in_force(c, x)
    elif isinstance(c, MedecinTraitant):
        detail, rows = _medecin_traitant(c, x)
    elif isinstance(c, Care):
        detail, rows = _care(c, x)
        label = c.label
    elif isinstance(c, NotEnrolled):
        detail, rows = _not_enrolled(c, x)
    elif isinstance(c, NoOpposition):
        detail, rows = _no_opposition(c, x)
    elif c.kind == "has_contact":
        detail, rows = _has_contact(x)
    else:
        detail = ""
    return Check(
        name=c.kind,
        passed=reason is None,
        reason=reason,
        detail=detail,
        rows=rows,
        label=label,
        children=kids,
    )


def _gap_check(x: _Ctx, name: str, g: NoCare, gap: bool) -> Check:
    rows, lo, hi, years = _acts_in_window(x, g.source, g.codes, g.span)
    if years is not None:
        span = f"{years[0]}" if len(years) == 1 else f"{years[0]}–{years[-1]}"
        inside = [r for r in rows if r["in_window"]]
        if inside:
            detail = f"dernier en {span} : le {_fr(inside[0]['date'])} ({inside[0]['code']})"
        elif rows:
            detail = f"aucun en {span} ; le dernier le {_fr(rows[0]['date'])} ({rows[0]['code']})"
        else:
            detail = f"aucun en {span}, aucun dans l'extraction"
        return Check(
            name=name, passed=not gap, reason=name if gap else None, detail=detail, rows=rows
        )
    inside = [r for r in rows if r["in_window"]]
    if inside:
        detail = f"dernier du {lo} au {hi} : {inside[0]['date']} ({inside[0]['code']})"
    elif rows:
        detail = f"aucun du {lo} au {hi} ; le dernier le {rows[0]['date']} ({rows[0]['code']})"
    else:
        detail = f"aucun du {lo} au {hi}, aucun dans l'extraction"
    return Check(name=name, passed=not gap, reason=name if gap else None, detail=detail, rows=rows)


def explain_person(
    *, rule: TargetingRule, extract: Path, as_of: date, ben_nir_psa: str, ben_rng_gem: int
) -> Explanation:
    """The rule's decision for one person and the rows that support each part of it."""
    con = duckdb.connect()
    paths: dict[str, Path] = {}
    try:
        paths = open_extract(con, Path(extract), tables_needed(rule), specs=table_specs(rule))
        return _explain(
            _Rows(con, [ben_nir_psa, ben_rng_gem]), rule, as_of, ben_nir_psa, ben_rng_gem
        )
    except duckdb.Error as e:
        raise read_failure(e, Path(extract), paths) from None
    finally:
        con.close()


def explain_people(
    *, rule: TargetingRule, extract: Path, as_of: date, keys: list[tuple[str, int]]
) -> list[Explanation]:
    """The decision for many people at once (stored at admission): each criterion's query
    runs once for the whole set, not once per person; the same result as `explain_person`."""
    if not keys:
        return []
    con = duckdb.connect()
    paths: dict[str, Path] = {}
    try:
        paths = open_extract(con, Path(extract), tables_needed(rule), specs=table_specs(rule))
        wanted = pa.table(
            {
                "ben_nir_psa": pa.array([k[0] for k in keys], pa.string()),
                "ben_rng_gem": pa.array([k[1] for k in keys], pa.int64()),
            }
        )
        con.register("_wanted", wanted)
        con.execute("CREATE TEMP TABLE _keys AS SELECT DISTINCT * FROM _wanted")
        _narrow(con, list(paths))
        cache: dict[str, Any] = {}
        out = []
        for nir, rng in keys:
            rows = _BatchRows(con, cache)
            rows.key = [nir, rng]
            out.append(_explain(rows, rule, as_of, nir, rng))
        return out
    except duckdb.Error as e:
        raise read_failure(e, Path(extract), paths) from None
    finally:
        con.close()


def _narrow(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
    """Point each table's view at its rows for the people of `_keys` only, read once: every
    later query (the rule, each criterion) then reads a few rows instead of the extract.

    A person's decision and evidence depend on their own rows only, so the result is the same
    (`explain_person`, over the whole extract, is the reference the tests compare with).
    """
    columns = {t: {r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()} for t in tables}
    # A short list of literal keys lets the Parquet reader skip rows; a long one, a hash join.
    nirs = [r[0] for r in con.execute("SELECT DISTINCT ben_nir_psa FROM _keys").fetchall()]
    who = (
        f"ben_nir_psa IN {sql_list(nirs)}"
        if len(nirs) <= _LITERAL_KEYS
        else "ben_nir_psa IN (SELECT ben_nir_psa FROM _keys)"
    )
    personal = [t for t in tables if "ben_nir_psa" in columns[t]]
    for t in personal:
        con.execute(f"CREATE TEMP TABLE _only_{t} AS SELECT * FROM {t} WHERE {who}")
    # Care detail tables carry no person key: the rows of the kept care lines.
    if "er_prs_f" in personal:
        for t in tables:
            if t not in personal and set(JOIN_KEYS) <= columns[t]:
                con.execute(
                    f"CREATE TEMP TABLE _only_{t} AS SELECT a.* FROM {t} a "
                    f"WHERE EXISTS (SELECT 1 FROM _only_er_prs_f p WHERE {CARE_JOIN})"
                )
                personal.append(t)
    for t in personal:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {t} AS SELECT * FROM _only_{t}")


def _explain(
    rows: _Rows, rule: TargetingRule, as_of: date, ben_nir_psa: str, ben_rng_gem: int
) -> Explanation:
    """The explanation, from the typed views of an opened extract."""
    decision = rows(
        f"SELECT {_keys('r.')}, r.* FROM ({rule_sql(rule, as_of, include_ineligible=True)}) r "
        f"WHERE {_who('r.')}"
    )
    out = Explanation(ben_nir_psa, ben_rng_gem, as_of, found=bool(decision))
    if not decision:
        return out
    row = decision[0]
    ben = rows(f"SELECT {_keys()}, * FROM ir_ben_r WHERE {_who()}")[0]
    out.eligible, out.priority = bool(row["eligible"]), bool(row["priority"])
    out.reasons = list(dict.fromkeys(r for r in (row["reasons"] or "").split(";") if r))
    out.renewal_date, out.echelon = row["ald_end_date"], row["echelon"]
    when = [rule.priority.when] if rule.priority and rule.priority.when else []
    nodes = walk(rule.criteria) + walk(when)
    judged = rows(
        f"SELECT {_keys('n.')}, n.* FROM ({node_reasons_sql(rule, as_of, nodes)}) n "
        f"WHERE {_who('n.')}"
    )[0]
    verdicts = {id(n): judged[f"r{i}"] or None for i, n in enumerate(nodes)}
    x = _Ctx(rows, rule, as_of, ben, verdicts)
    out.criteria = [_check(c, x) for c in rule.criteria]
    out.priority_rule = _check(when[0], x) if when else None
    out.gaps = [_gap_check(x, name, g, bool(row[name])) for name, g in rule.gaps.items()]
    return out
