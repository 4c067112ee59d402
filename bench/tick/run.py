"""Benchmark: the daily cascade tick for N people — time, memory, Prefect task runs.

    uv run python bench/tick/run.py                 # 10,000 and 100,000 people, SQLite
    uv run python bench/tick/run.py --db postgresql://postgres@127.0.0.1:5432/test

Each size gets a fresh database filled through the real admission service; the tick then
runs as the `cascade-tick` Prefect flow (ephemeral API), and the task runs of that flow run
are counted through the Prefect client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pandas as pd  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

DAY = date(2026, 4, 16)


def population(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """n eligible people whose renewal dates spread over the next 120 days."""
    i = pd.RangeIndex(n)
    keys = "B" + pd.Series(i).astype(str).str.zfill(9)
    anchor = [DAY + timedelta(days=int(x)) for x in (i % 120) - 30]
    targets = pd.DataFrame(
        {
            "ben_nir_psa": keys,
            "ben_rng_gem": 1,
            "eligible": True,
            "priority": i % 3 == 0,
            "gap_renal": i % 3 == 0,
            "gap_dental": i % 2 == 0,
            "gap_fundus": i % 3 == 0,
            "ald_end_date": anchor,
            "echelon": "",
            "reasons": "",
        }
    )
    targets["echelon"] = [("75", "77", "78", "91", "92", "93", "94", "95")[k % 8] for k in i]
    people = pd.DataFrame(
        {
            "ben_nir_psa": keys,
            "ben_rng_gem": 1,
            "nir": "184127645108946",
            "civilite": "Mme",
            "nom": "DUPONT",
            "prenom": "Anne",
            "adresse_l1": "Mme Anne DUPONT",
            "adresse_l2": None,
            "adresse_l3": None,
            "adresse_l4": "1 RUE DE LA PAIX",
            "adresse_l5": None,
            "adresse_l6": "75002 PARIS",
            "telephone": ["+33612345678" if k % 4 else None for k in i],
            "email": None,
            "compte_ameli": i % 5 < 3,
            "echelon": targets["echelon"],
            "caisse": "751",
            "ben_sex_cod": 2,
            "ben_nai_ann": "1958",
            "ben_nai_moi": "03",
            "ben_res_dpt": targets["echelon"],
        }
    )
    return targets, people


def fresh_db(kind: str, pg_admin: str | None, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    assert pg_admin
    name = f"relance_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        pg_admin.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return pg_admin.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + name


async def task_runs_of(flow_run_id: uuid.UUID) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        return len(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--db", default=None, help="PostgreSQL admin URL; default SQLite")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from campaigns.cascade.membership import admit_targets
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import get_engine, session_scope
    from campaigns.ledger.registry import register_campaign
    from flows.daily import cascade_tick

    campaign = load_campaign("sophia-ald8")
    results = []
    tmp = Path(tempfile.mkdtemp())
    for n in [int(x) for x in args.sizes.split(",")]:
        url = fresh_db("postgresql" if args.db else "sqlite", args.db, tmp)
        os.environ["RELANCE_DATABASE_URL"] = url
        from campaigns.settings import get_settings

        get_settings.cache_clear()
        engine = get_engine(url)
        targets, people = population(n)
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            register_campaign(session=s, definition=campaign.definition, launched=True)
            admit_targets(
                session=s,
                definition=campaign.definition,
                targets=targets,
                people=people,
                today=DAY - timedelta(days=1),
            )
        admit_s = time.perf_counter() - t0
        times = []
        task_runs = []
        for r in range(args.repeat):
            day = DAY + timedelta(days=r)
            t0 = time.perf_counter()
            state = cascade_tick(campaign_id="sophia-ald8", day=day, return_state=True)
            times.append(time.perf_counter() - t0)
            counts = state.result()
            task_runs.append(asyncio.run(task_runs_of(state.state_details.flow_run_id)))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(
            {
                "people": n,
                "db": engine.dialect.name,
                "admit_s": round(admit_s, 2),
                "tick_median_s": round(statistics.median(times), 2),
                "tick_runs_s": [round(t, 2) for t in times],
                "task_runs_per_flow_run": task_runs,
                "peak_rss_mb": round(rss_mb),
                "first_day_counts": {
                    k: v for k, v in counts.items() if not k.startswith(("queued_", "skipped_"))
                },
            }
        )
        print(json.dumps(results[-1]), flush=True)
    out = ROOT / "bench" / "results" / f"tick-{results[0]['db']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
