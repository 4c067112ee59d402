"""Opening an extract in DuckDB: every table checked, typed and exposed as a view.

A table is `DIR/<table>.parquet` or `DIR/<table>.csv`. Problems are reported with the file,
the row (1-based data row; for CSV the line number, header = line 1), the column and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from targeting.schema import PERSON_KEY, TABLES, Column

_SQL_TYPES = {"str": "VARCHAR", "int": "BIGINT", "date": "DATE", "bool": "BOOLEAN"}
_EXPECTED = {
    "int": "an integer",
    "date": "a date (YYYY-MM-DD)",
    "bool": "true or false",
    "str": "text",
}
# NIR: sex, year, month, département (2A/2B for Corsica), commune, order, check key.
_NIR_SHAPE = "^[1-478][0-9]{4}(2A|2B|[0-9]{2})[0-9]{8}$"
_validated: set[tuple[str, int, int]] = set()


class ExtractError(ValueError):
    """A problem in an extract: which file, row and column, and why."""

    def __init__(
        self, file: Path | str, reason: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        where = [self.file]
        if row is not None:
            where.append(f"line {row}" if self.file.endswith(".csv") else f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{': '.join([', '.join(where)])}: {reason}")


def _q(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def table_path(extract: Path, table: str) -> Path:
    """The file holding a table: Parquet if present, else CSV."""
    for suffix in (".parquet", ".csv"):
        p = extract / f"{table}{suffix}"
        if p.exists():
            return p
    raise ExtractError(extract / f"{table}.parquet", f"missing table {table} (.parquet or .csv)")


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
            raise ExtractError(path, "empty file: expected a header line", row=1)
        text_head = head.decode("utf-8", errors="replace")
        if ";" in text_head and "," not in text_head:
            raise ExtractError(path, "the file is ';'-separated: expected ','", row=1)
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
                    f"not UTF-8 (byte 0x{chunk[e.start]:02X}); save the file as UTF-8 "
                    "(it looks like latin-1)",
                    row=line,
                ) from None
            line += chunk.count(b"\n")


def _parquet_clean(path: Path) -> set[str]:
    """Columns the Parquet footer proves have no null and no blank value (no scan needed)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
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
    reason: str  # may hold {value}
    show_value: bool = True


def _column_checks(col: Column, source_type: str, clean: bool) -> list[_Check]:
    """What every value of a column must satisfy: present when required, parsable, shaped."""
    name = f'"{col.name}"'
    target = _SQL_TYPES[col.type]
    text = source_type == "VARCHAR"
    value = f"NULLIF(TRIM({name}), '')" if text else name
    out = []
    # A Parquet column whose footer proves it has no empty value needs no check for emptiness.
    if not col.nullable and not clean:
        out.append(_Check(col.name, f"{value} IS NULL", "empty value in a required column"))
    if col.pattern:
        out.append(
            _Check(
                col.name,
                f"{value} IS NOT NULL AND NOT regexp_full_match(CAST({value} AS VARCHAR), "
                f"'{col.pattern}')",
                "{value} does not match " + col.pattern.replace("{", "{{").replace("}", "}}"),
            )
        )
    if col.type != "str" and source_type != target:
        cast = (
            _cast_unchecked(col, source_type)
            if col.type == "bool" and text
            else f"TRY_CAST({value} AS {target})"
        )
        out.append(
            _Check(
                col.name,
                f"{value} IS NOT NULL AND ({cast}) IS NULL",
                f"{{value}} is not {_EXPECTED[col.type]}",
            )
        )
    return out


def _nir_checks() -> list[_Check]:
    """Every NIR has the shape of a NIR and a right check key (the value is never shown)."""
    nir = "TRIM(CAST(nir AS VARCHAR))"
    shape = f"regexp_full_match({nir}, '{_NIR_SHAPE}')"
    number = f"TRY_CAST(replace(replace(substr({nir}, 1, 13), '2A', '19'), '2B', '18') AS BIGINT)"
    key = f"TRY_CAST(substr({nir}, 14, 2) AS INTEGER)"
    return [
        _Check(
            "nir", f"nir IS NOT NULL AND NOT {shape}", "invalid NIR: not the shape of a NIR", False
        ),
        _Check(
            "nir",
            f"CASE WHEN {shape} THEN 97 - {number} % 97 <> {key} ELSE false END",
            "invalid NIR: wrong check key",
            False,
        ),
    ]


def _run_checks(con: duckdb.DuckDBPyConnection, path: Path, raw: str, checks: list[_Check]) -> None:
    """All checks of a table in one scan; the first bad row (then column) is reported."""
    if not checks:
        return
    firsts = ", ".join(f"min(CASE WHEN {c.bad} THEN _row END)" for c in checks)
    rows = con.execute(f"SELECT {firsts} FROM {raw}").fetchall()[0]
    hits = [(r, i) for i, r in enumerate(rows) if r is not None]
    if not hits:
        return
    row, i = min(hits)
    check = checks[i]
    value = ""
    if check.show_value:
        got = next(
            iter(con.execute(f'SELECT "{check.column}" FROM {raw} WHERE _row = {row}').fetchall()),
            None,
        )
        value = repr(str(got[0])[:40]) if got else ""
    raise ExtractError(path, check.reason.format(value=value), row=row, column=check.column)


def _check_unique(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> None:
    hit = con.execute(
        f"""
        SELECT min(_row), max(_row) FROM {view}
        GROUP BY ben_nir_psa, ben_rng_gem HAVING count(*) > 1
        ORDER BY 1 LIMIT 1
        """
    ).fetchall()
    if hit:
        first, last = hit[0]
        raise ExtractError(
            path,
            f"person key (ben_nir_psa, ben_rng_gem) repeated (first seen at {first})",
            row=last,
            column="ben_nir_psa",
        )


def open_extract(
    con: duckdb.DuckDBPyConnection,
    extract: Path,
    tables: Iterable[str] = tuple(TABLES),
    *,
    validate: bool = True,
) -> dict[str, Path]:
    """Create one typed view per table in `con`; raise ExtractError on the first problem."""
    extract = Path(extract)
    if not extract.is_dir():
        raise ExtractError(extract, "no such extract folder")
    paths = {}
    for name in tables:
        spec = TABLES[name]
        path = table_path(extract, name)
        paths[name] = path
        raw = _raw(path)
        stat = path.stat()
        token = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if validate and token not in _validated and path.suffix == ".csv":
            check_csv_text(path)
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {_reader(path)}").fetchall()
        except duckdb.Error as e:
            raise ExtractError(path, f"unreadable: {str(e).splitlines()[0]}") from None
        source_types = {r[0].lower(): r[1] for r in described}
        check = validate and token not in _validated
        clean = _parquet_clean(path) if check and path.suffix == ".parquet" else set()
        exprs, checks = [], []
        for col in spec.columns:
            if col.name not in source_types:
                raise ExtractError(
                    path,
                    f"missing column (the table needs {', '.join(spec.column_names)})",
                    column=col.name,
                )
            source_type = source_types[col.name]
            checks += _column_checks(col, source_type, col.name in clean)
            exprs.append(
                f"{_cast_unchecked(col, source_type, path.suffix == '.csv')} AS {col.name}"
            )
        typed = f"SELECT {', '.join(exprs)} FROM {{source}}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {typed.format(source=_reader(path))}")
        if check:
            _run_checks(con, path, raw, checks + (_nir_checks() if name == "contacts" else []))
            located = f"(SELECT {', '.join(exprs)}, _row FROM {raw})"
            if name in ("ir_ben_r", "contacts") and set(PERSON_KEY) <= set(spec.column_names):
                _check_unique(con, path, located)
            _validated.add(token)
    return paths


def _cast_unchecked(col: Column, source_type: str, csv: bool = True) -> str:
    name = f'"{col.name}"'
    # CSV text is trimmed; Parquet text is taken as written (trimming costs a pass).
    if source_type != "VARCHAR":
        value = name
    else:
        value = f"NULLIF(TRIM({name}), '')" if csv else f"NULLIF({name}, '')"
    if col.type == "bool" and source_type == "VARCHAR":
        return f"CASE lower({value}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    return f"CAST({value} AS {_SQL_TYPES[col.type]})"
