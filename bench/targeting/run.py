"""Benchmark: a campaign's rule over synthetic extracts, DuckDB engine vs the pandas baseline.

    uv run python bench/targeting/run.py                          # 1 M (both) and 10 M (DuckDB)
    uv run python bench/targeting/run.py --sizes 1000000 --repeat 5
    uv run python bench/targeting/run.py --campaign grippe-2026 --as-of 2026-10-14 \
        --sizes 12000000 --engines duckdb --baseline-up-to 0     # a region's flu wave

Times include opening and checking the extract (every column parsed, NIRs, person keys).
Each measurement runs in a fresh process that reports its own wall time and peak RSS, so
one run's caches and memory do not leak into the next. Extracts are generated once under
--data-dir and reused (same seed, same bytes). At the sizes where both run, the two outputs
are compared row for row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
AS_OF = date(2026, 3, 2)

CHILD = r"""
import json, resource, sys, time
from datetime import date
from pathlib import Path
sys.path.insert(0, {root!r})
from campaigns.definition.catalog import load_campaign
rule = load_campaign({campaign!r}).definition.targeting
extract, out, engine = Path({extract!r}), Path({out!r}), {engine!r}
import pyarrow.parquet as pq
import pandas as pd
from targeting.engine import run_targeting
from bench.targeting.baseline_pandas import run_baseline
t0 = time.perf_counter()  # imports are not timed
if engine.startswith("duckdb"):
    table = run_targeting(rule=rule, extract=extract, as_of=date.fromisoformat({as_of!r}),
                          include_ineligible=engine == "duckdb_all")
    rows, eligible = table.num_rows, int(table["eligible"].to_numpy().sum())
    elapsed = time.perf_counter() - t0
    pq.write_table(table, out)
else:
    frame = run_baseline(rule=rule, extract=extract, as_of=date.fromisoformat({as_of!r}))
    frame = frame[frame["eligible"]].reset_index(drop=True)
    rows, eligible = len(frame), int(frame["eligible"].sum())
    elapsed = time.perf_counter() - t0
    frame.to_parquet(out)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": elapsed, "peak_rss_mb": rss, "rows": rows, "eligible": eligible}}))
"""


def measure(
    engine: str, extract: Path, out: Path, campaign: str = "sophia-ald8", as_of: date = AS_OF
) -> dict[str, float]:
    code = CHILD.format(
        root=str(ROOT),
        extract=str(extract),
        out=str(out),
        engine=engine,
        as_of=as_of.isoformat(),
        campaign=campaign,
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def same_rows(a: Path, b: Path) -> bool:
    import pandas as pd

    left, right = pd.read_parquet(a), pd.read_parquet(b)
    if len(left) != len(right) or list(left.columns) != list(right.columns):
        return False
    for col in left.columns:
        x = left[col].map(lambda v: None if pd.isna(v) else str(v)[:10]).tolist()
        y = right[col].map(lambda v: None if pd.isna(v) else str(v)[:10]).tolist()
        if x != y:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--baseline-up-to", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench")
    ap.add_argument("--campaign", default="sophia-ald8")
    ap.add_argument("--as-of", type=date.fromisoformat, default=AS_OF, help="the extract's date")
    ap.add_argument("--engines", default="duckdb,duckdb_all", help="besides the pandas baseline")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "targeting.json")
    args = ap.parse_args()
    from targeting.synth import write_extract

    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        dated = "" if args.as_of == AS_OF else f"-{args.as_of.isoformat()}"
        extract = args.data_dir / f"extract-{n}{dated}"
        if not (extract / "ir_ben_r.parquet").exists():
            t0 = time.perf_counter()
            write_extract(out=extract, people=n, seed=2016, as_of=args.as_of)
            print(f"synth {n:,}: {time.perf_counter() - t0:.1f} s", flush=True)
        size_mb = sum(p.stat().st_size for p in extract.iterdir()) / 2**20
        row: dict[str, object] = {
            "people": n,
            "extract_mb": round(size_mb),
            "campaign": args.campaign,
            "as_of": args.as_of.isoformat(),
        }
        # duckdb: the CLI's default output (eligible people); duckdb_all: every person with
        # reasons (--include-ineligible); pandas computes every person, then keeps the eligible.
        engines = args.engines.split(",") + (["pandas"] if n <= args.baseline_up_to else [])
        for engine in engines:
            runs = [
                measure(
                    engine,
                    extract,
                    args.data_dir / f"out-{engine}-{n}.parquet",
                    args.campaign,
                    args.as_of,
                )
                for _ in range(args.repeat)
            ]
            row[engine] = {
                "median_s": round(statistics.median(r["seconds"] for r in runs), 2),
                "runs_s": [round(r["seconds"], 2) for r in runs],
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
                "rows": runs[0]["rows"],
                "eligible": runs[0]["eligible"],
            }
            print(json.dumps({"people": n, engine: row[engine]}), flush=True)
        if "pandas" in row:
            duck, pand = row["duckdb"], row["pandas"]
            assert isinstance(duck, dict) and isinstance(pand, dict)
            row["speedup"] = round(pand["median_s"] / duck["median_s"], 1)
            row["identical_rows"] = same_rows(
                args.data_dir / f"out-duckdb-{n}.parquet", args.data_dir / f"out-pandas-{n}.parquet"
            )
        results.append(row)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
