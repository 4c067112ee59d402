"""The same targeting query on Apache Spark, for national extracts on a cluster.

The rule is compiled once to SQL (`targeting.engine.rule_sql`); here the extract's tables
become Spark temporary views with the same names and types, and Spark SQL runs the text
unchanged. `master` is `local[*]` on one machine or a cluster URL (`spark://host:7077`,
`yarn`, `k8s://…`); the extract folder may be any path Spark reads (`s3a://`, `hdfs://`).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from targeting.engine import distinct_reasons, output_columns, rule_sql, table_specs, tables_needed
from targeting.extract import ExtractError
from targeting.rule import TargetingRule
from targeting.schema import TABLES, Table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_SPARK_TYPES = {"str": "STRING", "int": "BIGINT", "date": "DATE", "bool": "BOOLEAN"}


def spark_session(master: str = "local[2]", app: str = "relance-targeting") -> SparkSession:
    """A Spark session (reused if one is already running in this process)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _exists(spark: SparkSession, path: str) -> bool:
    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    p = jvm.org.apache.hadoop.fs.Path(path)
    return bool(p.getFileSystem(conf).exists(p))


def register_extract(
    spark: SparkSession, extract: str, tables: list[str], specs: dict[str, Table] | None = None
) -> None:
    """One typed temporary view per table, read from `<extract>/<table>.parquet` or `.csv`."""
    base = str(extract).rstrip("/")
    for name in tables:
        spec = (specs or {}).get(name) or TABLES[name]
        pq_path, csv_path = f"{base}/{name}.parquet", f"{base}/{name}.csv"
        if _exists(spark, pq_path):
            frame, csv = spark.read.parquet(pq_path), False
        elif _exists(spark, csv_path):
            frame, csv = spark.read.option("header", True).csv(csv_path), True
        else:
            raise ExtractError(pq_path, f"table {name} manquante (.parquet ou .csv)")
        present = {c.lower() for c in frame.columns}
        exprs = []
        for col in spec.columns:
            if col.name not in present:
                raise ExtractError(
                    csv_path if csv else pq_path, "colonne manquante", column=col.name
                )
            raw = f"NULLIF(TRIM(`{col.name}`), '')" if csv else f"`{col.name}`"
            if col.type == "bool" and csv:
                cast = f"CASE lower({raw}) WHEN 'true' THEN true WHEN 'false' THEN false END"
            else:
                cast = f"CAST({raw} AS {_SPARK_TYPES[col.type]})"
            exprs.append(f"{cast} AS {col.name}")
        frame.selectExpr(*exprs).createOrReplaceTempView(name)


def run_targeting_spark(
    *,
    rule: TargetingRule,
    extract: str,
    as_of: date,
    include_ineligible: bool = False,
    spark: SparkSession | None = None,
    master: str = "local[2]",
) -> pa.Table:
    """The rule's output computed by Spark, as an Arrow table (same columns and order)."""
    spark = spark or spark_session(master)
    register_extract(spark, extract, tables_needed(rule), table_specs(rule))
    result = spark.sql(rule_sql(rule, as_of, include_ineligible=include_ineligible))
    table = result.toArrow()
    schema = pa.schema(
        [
            ("ben_nir_psa", pa.string()),
            ("ben_rng_gem", pa.int64()),
            ("eligible", pa.bool_()),
            ("priority", pa.bool_()),
            *[(g, pa.bool_()) for g in rule.gaps],
            ("ald_end_date", pa.date32()),
            *([("birth_date", pa.date32())] if rule.exact_ages else []),
            ("echelon", pa.string()),
            ("reasons", pa.string()),
        ]
    )
    assert table.column_names == output_columns(rule)
    return distinct_reasons(table.cast(schema))
