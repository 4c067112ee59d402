"""Opening an extract in DuckDB: every table checked, typed and exposed as a view.

A table is `DIR/<table>.parquet` or `DIR/<table>.csv`. Problems are reported with the file,
the row (1-based data row; for CSV the line number, header = line 1), the column and why.
`check_extract` lists every problem of every table (at most `CAP` per table, then a count);
`open_extract` raises `ExtractError` naming the first one and carrying the whole list.
No cell's value is ever part of a problem (any cell may hold personal data): a problem says
what was expected. Person keys shaped like a NIR, a phone number or an e-mail are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from targeting.identifiers import (
    CANDIDATE,
    KIND_WORDS,
    RNG_GEM_MAX,
    RNG_GEM_MIN,
    SEPARATORS,
    SHAPES,
)
from targeting.schema import PERSON_KEY, REQUIRED_TABLES, TABLES, Column, Table

_SQL_TYPES = {"str": "VARCHAR", "int": "BIGINT", "date": "DATE", "bool": "BOOLEAN"}
_EXPECTED = {
    "int": "un nombre entier",
    "date": "une date (AAAA-MM-JJ)",
    "bool": "true ou false",
    "str": "du texte",
}
# What an integer or a date written as text must look like before it is cast.
_TEXT_SHAPES = {"int": "-?[0-9]{1,18}", "date": "[0-9]{4}-[0-9]{2}-[0-9]{2}"}
# NIR: sex, year, month, département (2A/2B for Corsica), commune, order, check key.
_NIR_SHAPE = "^[1-478][0-9]{4}(2A|2B|[0-9]{2})[0-9]{8}$"
# AFNOR NF Z10-011: a postal address line holds at most 38 characters.
ADDRESS_LINE_MAX = 38
CAP = 1000  # problems listed per table; the rest are counted
_CSV_ERRORS = {
    "TOO MANY COLUMNS": "trop de colonnes",
    "MISSING COLUMNS": "colonnes manquantes",
    "UNQUOTED VALUE": "guillemets mal placés",
    "INVALID UNICODE": "pas en UTF-8",
    "LINE SIZE OVER MAXIMUM": "ligne trop longue",
}
_validated: set[tuple[str, int, int]] = set()

Severity = Literal["error", "warning"]


def _where(file: str, row: int | None, column: str | None) -> str:
    where = [file]
    if row is not None:
        where.append(f"ligne {row}" if file.endswith(".csv") else f"enregistrement {row}")
    if column is not None:
        where.append(f"colonne {column}")
    return ", ".join(where)


def _redact(message: str) -> str:
    """A driver's message without what it quotes (a quoted part may be a cell's value)."""
    import re

    return re.sub(r"'[^']*'|\"[^\"]*\"", "…", message.splitlines()[0] if message else "")


@dataclass(frozen=True)
class Problem:
    """One problem of an extract: file, row (CSV: line), column, why, and whose row it is.

    `key` is the row's person key `ben_nir_psa:ben_rng_gem` when it is a valid one (never a
    value shaped like a NIR, a phone number or an e-mail).
    A `warning` does not refuse the extract (e.g. an address line too long for a letter).
    """

    file: str
    reason: str
    row: int | None = None
    column: str | None = None
    key: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{_where(self.file, self.row, self.column)} : {self.reason}"


class ExtractError(ValueError):
    """A problem in an extract: which file, row and column, and why.

    `problems` holds every problem found (the message names the first error).
    """

    def __init__(
        self,
        file: Path | str,
        reason: str,
        *,
        row: int | None = None,
        column: str | None = None,
        problems: Sequence[Problem] | None = None,
    ) -> None:
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        self.problems = (
            list(problems) if problems else [Problem(self.file, reason, row=row, column=column)]
        )
        super().__init__(f"{_where(self.file, row, column)} : {reason}")

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> ExtractError:
        """The error of a list of problems: its first error, carrying the whole list."""
        first = next(p for p in problems if p.severity == "error")
        return cls(first.file, first.reason, row=first.row, column=first.column, problems=problems)


def _q(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def table_path(extract: Path, table: str) -> Path:
    """The file holding a table: Parquet if present, else CSV."""
    for suffix in (".parquet", ".csv"):
        p = extract / f"{table}{suffix}"
        if p.exists():
            return p
    raise ExtractError(extract / f"{table}.parquet", f"table {table} manquante (.parquet ou .csv)")


def _reader(path: Path) -> str:
    """The file as a relation of text (CSV) or typed (Parquet) columns."""
    if path.suffix == ".csv":
        return (
            f"read_csv({_q(path)}, header=true, all_varchar=true, delim=',', quote='\"', "
            "escape='\"')"
        )
    return f"read_parquet({_q(path)})"


def _raw(path: Path) -> str:
    """The file with a 1-based `_row` (CSV: the line number), for locating problems."""
    if path.suffix == ".csv":
        return f"(SELECT *, row_number() OVER () + 1 AS _row FROM {_reader(path)})"
    return (
        f"(SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _row "
        f"FROM read_parquet({_q(path)}, file_row_number=true))"
    )


def check_csv_text(path: Path) -> None:
    """Refuse, with the line, a CSV that is empty, not UTF-8, or not comma-separated."""
    import codecs

    with path.open("rb") as f:
        head = f.readline()
        if not head.strip():
            raise ExtractError(path, "fichier vide : une ligne d'en-tête est attendue", row=1)
        text_head = head.decode("utf-8", errors="replace")
        if ";" in text_head and "," not in text_head:
            raise ExtractError(path, "séparateur ';' : les colonnes sont séparées par ','", row=1)
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        line = 1
        while chunk := f.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                line += chunk[: e.start].count(b"\n")
                raise ExtractError(
                    path,
                    f"pas en UTF-8 (octet 0x{chunk[e.start]:02X}) ; enregistrez le fichier en "
                    "UTF-8 (il semble être en latin-1)",
                    row=line,
                ) from None
            line += chunk.count(b"\n")


DAMAGED = "fichier endommagé ou illisible : recopiez-le depuis la source ou régénérez-le"


def read_failure(e: Exception, extract: Path, paths: dict[str, Path]) -> ExtractError:
    """A table that fails while it is read (a Parquet page damaged past the footer), named.

    The reader's own message is left out: it may quote a cell of a personal-data column.
    """
    text = str(e)
    named = [p for p in paths.values() if str(p) in text]
    if not named:
        # The message does not say which file: read each one whole (only on this failure path).
        con = duckdb.connect()
        try:
            for path in paths.values():
                try:
                    con.execute(f"SELECT max(hash(t)) FROM {_reader(path)} t").fetchall()
                except duckdb.Error:
                    named.append(path)
                    break
        finally:
            con.close()
    return ExtractError(named[0] if named else extract, DAMAGED)


def _parquet_clean(path: Path) -> set[str]:
    """Columns the Parquet footer proves have no null and no blank value (no scan needed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError):
        # Unreadable statistics prove nothing: the scan that follows names the damage.
        return set()
    clean: dict[str, bool] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            st = col.statistics
            ok = st is not None and st.has_null_count and st.null_count == 0
            if ok and st.has_min_max and isinstance(st.min, str | bytes):
                ok = len(st.min) > 0 and st.min[:1] not in (" ", b" ")
            name = col.path_in_schema.lower()
            clean[name] = clean.get(name, True) and bool(ok)
    return {k for k, v in clean.items() if v}


@dataclass(frozen=True)
class _Check:
    """A row-level check: the SQL condition of a bad value and what to say about it."""

    column: str
    bad: str
    reason: str  # may hold {length}, never the value
    severity: Severity = "error"


def _column_checks(col: Column, source_type: str, clean: bool) -> list[_Check]:
    """What every value of a column must satisfy: present when required, parsable, shaped."""
    name = f'"{col.name}"'
    target = _SQL_TYPES[col.type]
    text = source_type == "VARCHAR"
    value = f"NULLIF(TRIM({name}), '')" if text else name
    out = []
    # A Parquet column whose footer proves it has no empty value needs no check for emptiness.
    if not col.nullable and not clean:
        out.append(_Check(col.name, f"{value} IS NULL", "valeur vide dans une colonne obligatoire"))
    if col.pattern:
        out.append(
            _Check(
                col.name,
                f"{value} IS NOT NULL AND NOT regexp_full_match(CAST({value} AS VARCHAR), "
                f"'{col.pattern}')",
                "ne suit pas le format " + col.pattern.replace("{", "{{").replace("}", "}}"),
            )
        )
    if col.type != "str" and source_type != target:
        cast = (
            _cast_unchecked(col, source_type)
            if col.type == "bool" and text
            else f"TRY_CAST({value} AS {target})"
        )
        if text and col.type in _TEXT_SHAPES:
            # DuckDB's casts are lenient ('1.5' → 2, '0x10' → 16, '2023/01/05' → a date).
            cast = (
                f"CASE WHEN regexp_full_match({value}, '{_TEXT_SHAPES[col.type]}') THEN {cast} END"
            )
        out.append(
            _Check(
                col.name,
                f"{value} IS NOT NULL AND ({cast}) IS NULL",
                f"n'est pas {_EXPECTED[col.type]}",
            )
        )
    return out


def _nir_checks() -> list[_Check]:
    """Every NIR has the shape of a NIR and a right check key."""
    nir = "TRIM(CAST(nir AS VARCHAR))"
    shape = f"regexp_full_match({nir}, '{_NIR_SHAPE}')"
    number = f"TRY_CAST(replace(replace(substr({nir}, 1, 13), '2A', '19'), '2B', '18') AS BIGINT)"
    key = f"TRY_CAST(substr({nir}, 14, 2) AS INTEGER)"
    return [
        _Check("nir", f"nir IS NOT NULL AND NOT {shape}", "NIR invalide : pas la forme d'un NIR"),
        _Check(
            "nir",
            f"CASE WHEN {shape} THEN 97 - {number} % 97 <> {key} ELSE false END",
            "NIR invalide : mauvaise clé de contrôle",
        ),
    ]


def _address_checks(spec: Table) -> list[_Check]:
    """Address lines longer than AFNOR allows: a warning, for the letter channel only."""
    out = []
    for n in range(1, 7):
        name = f"adresse_l{n}"
        if name in spec.column_names:
            out.append(
                _Check(
                    name,
                    f'length(TRIM(CAST("{name}" AS VARCHAR))) > {ADDRESS_LINE_MAX}',
                    f"la ligne d'adresse {n} a {{length}} caractères, au plus {ADDRESS_LINE_MAX}",
                    "warning",
                )
            )
    return out


def _text(column: str) -> str:
    return f"NULLIF(TRIM(CAST(\"{column}\" AS VARCHAR)), '')"


def _kind(column: str) -> str:
    """SQL of the kind of identifier a cell is shaped like (NULL: none), as `kind_of` says."""
    text = f'CAST("{column}" AS VARCHAR)'  # untrimmed: the separators include blanks
    compact = f"regexp_replace({text}, '{SEPARATORS}', '', 'g')"
    whens = " ".join(
        f"WHEN regexp_full_match({compact}, '(?i)(?:{p})') THEN '{k}'" for k, p in SHAPES.items()
    )
    # Compacting and matching cost: only candidates (rare among pseudonymised keys) pay it.
    candidate = f"contains({text}, '@') OR regexp_full_match({text}, '(?i){CANDIDATE}')"
    return f"CASE WHEN {candidate} THEN CASE {whens} END END"


def _kind_column(column: str) -> str:
    return f'"_kind_{column}"'


def _with_kinds(raw: str, source_types: dict[str, str]) -> str:
    """The relation with, per key column, the kind of identifier its cell looks like.

    A birth rank typed as an integer is not matched: a NIR or a phone read as an integer is far
    out of its range, which another check reports.
    """
    kinds = [
        f"{'NULL' if typed_rank else _kind(c)} AS {_kind_column(c)}"
        for c in PERSON_KEY
        if c in source_types
        for typed_rank in [c == "ben_rng_gem" and source_types[c] != "VARCHAR"]
    ]
    return f"(SELECT *, {', '.join(kinds)} FROM {raw})" if kinds else raw


def _rng_in_range() -> str:
    """SQL: the birth rank is in range (NULL when it is no integer: another check says so)."""
    return f"TRY_CAST({_text('ben_rng_gem')} AS BIGINT) BETWEEN {RNG_GEM_MIN} AND {RNG_GEM_MAX}"


def _key_checks(present: set[str]) -> list[_Check]:
    """Person keys are pseudonymised: never a NIR, phone or e-mail; a birth rank is small."""
    out = [
        _Check(c, f"{_kind_column(c)} = '{kind}'", words)
        for c in PERSON_KEY
        if c in present
        for kind, words in KIND_WORDS.items()
    ]
    if "ben_rng_gem" in present:
        out.append(
            _Check(
                "ben_rng_gem",
                f"{_kind_column('ben_rng_gem')} IS NULL AND NOT coalesce({_rng_in_range()}, true)",
                f"rang de naissance hors de {RNG_GEM_MIN} à {RNG_GEM_MAX}",
            )
        )
    return out


def _key_text(present: set[str]) -> str:
    """SQL of the row's person key as text; NULL when the table has none or it is no key."""
    if not set(PERSON_KEY) <= present:
        return "NULL"
    psa, rng = _text(PERSON_KEY[0]), _text(PERSON_KEY[1])
    valid = " AND ".join(f"{_kind_column(c)} IS NULL" for c in PERSON_KEY)
    return f"CASE WHEN {valid} AND ({_rng_in_range()}) THEN concat_ws(':', {psa}, {rng}) END"


def _run_checks(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    raw: str,
    checks: list[_Check],
    present: set[str],
    cap: int,
) -> tuple[list[Problem], int]:
    """All checks of a table in one scan; a second scan only when some fail.

    Returns the problems of the first `cap` bad rows, in row then check order, and how many
    problems were left out.
    """
    if not checks:
        return [], 0
    counts = ", ".join(f"count(*) FILTER (WHERE {c.bad})" for c in checks)
    totals = con.execute(f"SELECT {counts} FROM {raw}").fetchall()[0]
    failing = [i for i, n in enumerate(totals) if n]
    if not failing:
        return [], 0
    flags = ", ".join(f"coalesce({checks[i].bad}, false)" for i in failing)
    # Only a length is ever said of a cell (address lines), never its value.
    measured = sorted({checks[i].column for i in failing if "{length}" in checks[i].reason})
    lengths = "".join(f', length(TRIM(CAST("{c}" AS VARCHAR)))' for c in measured)
    either = " OR ".join(f"coalesce({checks[i].bad}, false)" for i in failing)
    rows = con.execute(
        f"SELECT _row, {_key_text(present)}, {flags}{lengths} FROM {raw} "
        f"WHERE {either} ORDER BY _row LIMIT {cap}"
    ).fetchall()
    problems = []
    for r in rows:
        row, key, hits, got = r[0], r[1] or None, r[2 : 2 + len(failing)], r[2 + len(failing) :]
        length = dict(zip(measured, got, strict=True))
        for i, hit in zip(failing, hits, strict=True):
            if not hit:
                continue
            check = checks[i]
            reason = check.reason.format(length=length.get(check.column))
            problems.append(Problem(str(path), reason, row, check.column, key, check.severity))
    return problems, sum(totals) - len(problems)


def _check_unique(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    raw: str,
    key: tuple[str, str],
    key_text: str,
    cap: int,
) -> tuple[list[Problem], int]:
    """Every row repeating a person key seen on an earlier row (empty keys are not keys)."""
    psa, rng = key
    where = f"WHERE {psa} IS NOT NULL AND {rng} IS NOT NULL"
    groups = f"SELECT count(*) AS n FROM {raw} {where} GROUP BY {psa}, {rng} HAVING n > 1"
    if not con.execute(f"{groups} LIMIT 1").fetchall():
        return [], 0
    total = con.execute(f"SELECT sum(n - 1) FROM ({groups})").fetchall()[0][0]
    rows = con.execute(
        f"""
        SELECT _row, first, k FROM (
            SELECT _row, min(_row) OVER (PARTITION BY {psa}, {rng}) AS first,
                   {key_text} AS k
            FROM {raw} {where}
        ) WHERE _row > first ORDER BY _row LIMIT {cap}
        """
    ).fetchall()
    problems = [
        Problem(
            str(path),
            f"clé de personne (ben_nir_psa, ben_rng_gem) répétée (vue d'abord ligne {first})",
            row,
            "ben_nir_psa",
            k,
        )
        for row, first, k in rows
    ]
    return problems, int(total) - len(problems)


def _csv_structure(con: duckdb.DuckDBPyConnection, path: Path, cap: int) -> list[Problem]:
    """Lines of a CSV DuckDB cannot read (too many or too few fields, bad quoting).

    Neither the line nor what the driver quotes of it is ever shown (it may hold a NIR).
    """
    try:
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        con.execute(
            f"SELECT count(*) FROM read_csv({_q(path)}, header=true, all_varchar=true, "
            "delim=',', quote='\"', escape='\"', store_rejects=true)"
        ).fetchall()
        rejects = con.execute(
            "SELECT line, column_name, error_type, error_message FROM reject_errors "
            "ORDER BY line, column_idx"
        ).fetchall()
    except duckdb.Error:
        return []
    problems, seen = [], set()
    for line, column, error_type, message in rejects:
        if (line, error_type) in seen:  # one problem per line (not per missing field)
            continue
        seen.add((line, error_type))
        kind = _CSV_ERRORS.get(error_type, error_type.lower())
        reason = f"ligne illisible ({kind} : {_redact(message)})"
        problems.append(Problem(str(path), reason, int(line), column))
    if len(problems) > cap:
        more = len(problems) - cap
        problems = [*problems[:cap], Problem(str(path), f"… et {more} autres problèmes")]
    return problems


def _columns(
    spec: Table, path: Path, source_types: dict[str, str], csv: bool, clean: set[str]
) -> tuple[list[Problem], list[str], list[_Check]]:
    """Each column the table needs: missing (a problem), or its typed cast and its checks."""
    problems: list[Problem] = []
    exprs: list[str] = []
    checks: list[_Check] = []
    for col in spec.columns:
        if col.name not in source_types:
            problems.append(
                Problem(
                    str(path),
                    f"colonne manquante (la table a besoin de {', '.join(spec.column_names)})",
                    column=col.name,
                )
            )
            continue
        source_type = source_types[col.name]
        checks += _column_checks(col, source_type, col.name in clean)
        exprs.append(f"{_cast_unchecked(col, source_type, csv)} AS {col.name}")
    return problems, exprs, checks


def _unknown_columns(
    spec: Table, path: Path, source_types: dict[str, str], csv: bool
) -> list[Problem]:
    """Columns the file has and the table does not read (warnings)."""
    return [
        Problem(
            str(path),
            f"colonne inconnue, non lue (la table a {', '.join(spec.column_names)})",
            row=1 if csv else None,
            column=c,
            severity="warning",
        )
        for c in source_types
        if c not in spec.column_names
    ]


def _table_checks(name: str, spec: Table, present: set[str], warnings: bool) -> list[_Check]:
    """The checks across columns: the NIR and the address of contacts, the person key."""
    checks: list[_Check] = []
    if name == "contacts" and "nir" in present:
        checks += _nir_checks()
    if warnings and name == "contacts":
        checks += [c for c in _address_checks(spec) if c.column in present]
    return checks + _key_checks(present)


def _check_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: Path,
    *,
    validate: bool,
    force: bool,
    warnings: bool,
    cap: int,
    spec: Table,
) -> list[Problem]:
    """Check one table and create its typed view; the problems found, in file order."""
    csv = path.suffix == ".csv"
    stat = path.stat()
    token = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    check = validate and (force or token not in _validated)
    if check and csv:
        try:
            check_csv_text(path)
        except ExtractError as e:
            return e.problems
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {_reader(path)}").fetchall()
    except duckdb.Error as e:
        found = _csv_structure(con, path, cap) if csv else []
        return found or [Problem(str(path), f"illisible : {_redact(str(e))}")]
    source_types = {r[0].lower(): r[1] for r in described}
    clean = _parquet_clean(path) if check and not csv else set()
    problems, exprs, checks = _columns(spec, path, source_types, csv, clean)
    if check and warnings:
        problems += _unknown_columns(spec, path, source_types, csv)
    if len(exprs) == len(spec.columns):
        typed = f"SELECT {', '.join(exprs)} FROM {_reader(path)}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {typed}")
    if not check:
        return problems
    present = set(source_types) & set(spec.column_names)
    checks += _table_checks(name, spec, present, warnings)
    raw = _with_kinds(_raw(path), {c: source_types[c] for c in present})
    try:
        rows, hidden = _run_checks(con, path, raw, checks, present, cap)
        problems += rows
        if name in ("ir_ben_r", "contacts") and set(PERSON_KEY) <= present:
            key = tuple(
                _cast_unchecked(spec.column(k), source_types[k], csv, try_cast=True)
                for k in PERSON_KEY
            )
            dups, more = _check_unique(con, path, raw, (key[0], key[1]), _key_text(present), cap)
            problems += dups
            hidden += more
    except duckdb.Error as e:
        found = _csv_structure(con, path, cap) if csv else []
        return problems + (found or [Problem(str(path), f"illisible : {_redact(str(e))}")])
    if len(problems) > cap:
        hidden += len(problems) - cap
        problems = problems[:cap]
    if hidden:
        problems.append(Problem(str(path), f"… et {hidden} autres problèmes"))
    if not any(p.severity == "error" for p in problems):
        _validated.add(token)
    return problems


def _open(
    con: duckdb.DuckDBPyConnection,
    extract: Path,
    tables: Iterable[str] | None,
    *,
    validate: bool,
    force: bool,
    warnings: bool,
    cap: int,
    specs: Mapping[str, Table] | None = None,
) -> tuple[dict[str, Path], list[Problem]]:
    extract = Path(extract)
    if not extract.is_dir():
        return {}, [Problem(str(extract), "dossier d'extraction introuvable")]
    paths, problems = {}, []
    asked = tables is not None
    for name in all_tables(extract) if tables is None else tables:
        try:
            path = table_path(extract, name)
        except ExtractError as e:
            # Asked for by name: the campaign reads it, so say so.
            why = " : la campagne lit cette table" if asked else ""
            problems += [Problem(p.file, p.reason + why) for p in e.problems]
            continue
        spec = (specs or {}).get(name) or TABLES.get(name)
        if spec is None:
            problems.append(Problem(str(path), f"table {name} inconnue : aucune description"))
            continue
        paths[name] = path
        problems += _check_table(
            con, name, path, validate=validate, force=force, warnings=warnings, cap=cap, spec=spec
        )
    return paths, problems


def all_tables(extract: Path) -> list[str]:
    """The tables every extract holds, and the optional ones this extract has."""
    return [
        name
        for name in TABLES
        if name in REQUIRED_TABLES
        or any((Path(extract) / f"{name}{s}").exists() for s in (".parquet", ".csv"))
    ]


def check_extract(
    extract: Path,
    tables: Iterable[str] | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    cap: int = CAP,
    specs: Mapping[str, Table] | None = None,
) -> list[Problem]:
    """Every problem of every table (errors, and warnings such as long address lines).

    Without `tables`: the required tables and the optional ones present. `specs` describes
    tables a campaign names itself (a programme's enrolment table and its date column).

    Tables without errors are remembered as checked, so opening them next costs no scan.
    """
    own = con is None
    db = duckdb.connect() if con is None else con
    try:
        return _open(
            db, extract, tables, validate=True, force=True, warnings=True, cap=cap, specs=specs
        )[1]
    finally:
        if own:
            db.close()


def open_extract(
    con: duckdb.DuckDBPyConnection,
    extract: Path,
    tables: Iterable[str] | None = None,
    *,
    validate: bool = True,
    specs: Mapping[str, Table] | None = None,
) -> dict[str, Path]:
    """Create one typed view per table in `con` (by default as `check_extract` chooses).

    Raise ExtractError naming the first problem; its `problems` lists them all.
    """
    paths, problems = _open(
        con, extract, tables, validate=validate, force=False, warnings=False, cap=CAP, specs=specs
    )
    if any(p.severity == "error" for p in problems):
        raise ExtractError.of(problems)
    return paths


def _cast_unchecked(
    col: Column, source_type: str, csv: bool = True, *, try_cast: bool = False
) -> str:
    name = f'"{col.name}"'
    # CSV text is trimmed; Parquet text is taken as written (trimming costs a pass).
    if source_type != "VARCHAR":
        value = name
    else:
        value = f"NULLIF(TRIM({name}), '')" if csv else f"NULLIF({name}, '')"
    if col.type == "bool" and source_type == "VARCHAR":
        return f"CASE lower({value}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    cast = "TRY_CAST" if try_cast else "CAST"
    return f"{cast}({value} AS {_SQL_TYPES[col.type]})"
