"""Opening an extract in DuckDB: every table checked, typed and exposed as a view.

A table is `DIR/<table>.parquet` or `DIR/<table>.csv`. Problems are reported with the file,
the row (1-based data row; for CSV the line number, header = line 1), the column and why.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def _raw(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    """A relation over the file with a 1-based `_row` (CSV: the line number)."""
    if path.suffix == ".csv":
        return (
            f"(SELECT *, row_number() OVER () + 1 AS _row FROM read_csv({_q(path)}, "
            "header=true, all_varchar=true, delim=',', quote='\"', escape='\"'))"
        )
    return (
        f"(SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _row "
        f"FROM read_parquet({_q(path)}, file_row_number=true))"
    )


def _check_column(
    con: duckdb.DuckDBPyConnection, path: Path, raw: str, col: Column, source_type: str
) -> None:
    """Check every value of a column is present when required and parses as its type."""
    name = f'"{col.name}"'
    target = _SQL_TYPES[col.type]
    text = source_type == "VARCHAR"
    value = f"NULLIF(TRIM({name}), '')" if text else name
    if not col.nullable:
        bad = con.execute(f"SELECT _row FROM {raw} WHERE {value} IS NULL ORDER BY _row LIMIT 1")
        hit = bad.fetchone()
        if hit:
            raise ExtractError(
                path, "empty value in a required column", row=hit[0], column=col.name
            )
    if col.pattern:
        hit = con.execute(
            f"SELECT _row, {name} FROM {raw} WHERE {value} IS NOT NULL "
            f"AND NOT regexp_full_match(CAST({value} AS VARCHAR), '{col.pattern}') "
            "ORDER BY _row LIMIT 1"
        ).fetchone()
        if hit:
            raise ExtractError(
                path,
                f"{str(hit[1])[:40]!r} does not match {col.pattern}",
                row=hit[0],
                column=col.name,
            )
    if col.type == "str" or source_type == target:
        return
    if col.type == "bool" and text:
        cast = _cast_unchecked(col, source_type)
    else:
        cast = f"TRY_CAST({value} AS {target})"
    hit = con.execute(
        f"SELECT _row, {name} FROM {raw} WHERE {value} IS NOT NULL AND ({cast}) IS NULL "
        "ORDER BY _row LIMIT 1"
    ).fetchone()
    if hit:
        raise ExtractError(
            path,
            f"{str(hit[1])[:40]!r} is not {_EXPECTED[col.type]}",
            row=hit[0],
            column=col.name,
        )


def _check_nir(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> None:
    """Every NIR has 15 characters and a right check key (the value is never shown)."""
    number = "CAST(replace(replace(substr(nir, 1, 13), '2A', '19'), '2B', '18') AS BIGINT)"
    hit = con.execute(
        f"""
        SELECT _row, NOT regexp_full_match(nir, '{_NIR_SHAPE}') AS bad_shape
        FROM {view}
        WHERE NOT regexp_full_match(nir, '{_NIR_SHAPE}')
           OR 97 - {number} % 97 <> CAST(substr(nir, 14, 2) AS INTEGER)
        ORDER BY _row LIMIT 1
        """
    ).fetchone()
    if hit:
        why = "is not 15 characters of a NIR" if hit[1] else "has a wrong check key"
        raise ExtractError(path, f"invalid NIR: the value {why}", row=hit[0], column="nir")


def _check_unique(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> None:
    hit = con.execute(
        f"""
        SELECT min(_row), max(_row) FROM {view}
        GROUP BY ben_nir_psa, ben_rng_gem HAVING count(*) > 1
        ORDER BY 1 LIMIT 1
        """
    ).fetchone()
    if hit:
        raise ExtractError(
            path,
            f"person key (ben_nir_psa, ben_rng_gem) repeated (first seen at {hit[0]})",
            row=hit[1],
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
        raw = _raw(con, path)
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()
        except duckdb.Error as e:
            raise ExtractError(path, f"unreadable: {str(e).splitlines()[0]}") from None
        source_types = {r[0].lower(): r[1] for r in described}
        stat = path.stat()
        token = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        check = validate and token not in _validated
        exprs = ["_row"]
        for col in spec.columns:
            if col.name not in source_types:
                raise ExtractError(
                    path,
                    f"missing column (the table needs {', '.join(spec.column_names)})",
                    column=col.name,
                )
            source_type = source_types[col.name]
            if check:
                _check_column(con, path, raw, col, source_type)
            exprs.append(f"{_cast_unchecked(col, source_type)} AS {col.name}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {', '.join(exprs)} FROM {raw}")
        if check:
            if name == "contacts":
                _check_nir(con, path, name)
            if name in ("ir_ben_r", "contacts") and set(PERSON_KEY) <= set(spec.column_names):
                _check_unique(con, path, name)
            _validated.add(token)
    return paths


def _cast_unchecked(col: Column, source_type: str) -> str:
    name = f'"{col.name}"'
    value = f"NULLIF(TRIM({name}), '')" if source_type == "VARCHAR" else name
    if col.type == "bool" and source_type == "VARCHAR":
        return f"CASE lower({value}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    return f"CAST({value} AS {_SQL_TYPES[col.type]})"
