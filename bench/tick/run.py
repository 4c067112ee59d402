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


def fresh_db(kind: str, pg_admin: str | None, tmp: Path, template: str | None = None) -> str:
    """A new bench database; on PostgreSQL a file copy of `template` (a database URL) if given."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    assert pg_admin
    name = f"relance_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        pg_admin.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    admin.dispose()
    return pg_admin.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/" + name


def drop_db(pg_admin: str, url: str) -> None:
    admin = create_engine(
        pg_admin.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


async def task_runs_of(flow_run_id: uuid.UUID) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        return len(runs)


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _deliver_mailbox(engine: object, day: date) -> int:
    """Stand-in for the day's dispatch (another bench measures it): queued mailbox messages
    marked delivered, so the care act counts from a first contact."""
    with engine.begin() as c:  # type: ignore[attr-defined]
        return int(
            c.execute(
                text(
                    "UPDATE action SET state = 'delivered', done_on = :d "
                    "WHERE step = 'mailbox' AND state = 'queued'"
                ),
                {"d": day},
            ).rowcount
        )


def _dispensation_observer(share: float, on: date):  # type: ignore[no-untyped-def]
    """J07BB dispensations for `share` of the people asked, joined in DuckDB as the extract's
    observation does (first dispensation on or after `since`)."""
    import duckdb
    import pyarrow as pa

    def observe(*, extract: Path, goal: object, since: pd.DataFrame) -> pd.DataFrame:
        n = len(since)
        step = max(1, round(1 / share))
        disp = pa.table(
            {
                "ben_nir_psa": since["ben_nir_psa"].iloc[::step].to_numpy(),
                "ben_rng_gem": since["ben_rng_gem"].iloc[::step].astype("int64").to_numpy(),
                "pha_atc_c07": ["J07BB02"] * len(range(0, n, step)),
                "exe_soi_dtd": [on] * len(range(0, n, step)),
            }
        )
        people = pa.Table.from_pandas(since, preserve_index=False)
        con = duckdb.connect()
        con.register("disp", disp)
        con.register("people", people)
        return con.sql(
            "SELECT p.ben_nir_psa, p.ben_rng_gem, min(d.exe_soi_dtd) AS observed_on "
            "FROM people p JOIN disp d USING (ben_nir_psa, ben_rng_gem) "
            "WHERE d.pha_atc_c07 LIKE 'J07BB%' AND d.exe_soi_dtd >= p.since "
            "GROUP BY p.ben_nir_psa, p.ben_rng_gem"
        ).df()

    return observe


def wave(args: argparse.Namespace) -> None:
    """The flu wave (grippe-2026): admission, launch tick, quiet tick, goal observation."""
    from campaigns.cascade.goals import observe_goals
    from campaigns.cascade.membership import admit_targets
    from campaigns.clock import utcnow
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import get_engine, session_scope
    from campaigns.ledger.registry import register_campaign
    from campaigns.settings import get_settings
    from flows.daily import cascade_tick

    if args.member_by_member:
        # The launch tick before its SQL pass: every member planned one by one.
        from collections import Counter

        from campaigns.cascade import tick as tick_module
        from campaigns.cascade.fresh import FreshPass

        tick_module.plan_fresh = lambda **_: FreshPass(frozenset(), Counter())
    if args.cipher == "fernet":
        # What admission cost before g1 tokens: the same keys, Fernet tokens (still readable).
        from campaigns.ledger import crypto

        crypto.encrypt = lambda value: crypto.keyring().fernet.encrypt(value.encode()).decode()
    campaign = load_campaign("grippe-2026")
    d = campaign.definition
    launch = d.dates.start
    if not args.skip_ticks:
        # The ephemeral Prefect API starts with the first flow run of the process (20-30 s):
        # started here, so that no tick's time includes it.
        from prefect import flow

        flow(name="bench-warm-up")(lambda: None)()
    tmp = Path(tempfile.mkdtemp())
    results = []
    for n in [int(x) for x in args.sizes.split(",")]:
        runs = []
        for _ in range(args.repeat):
            url = fresh_db("postgresql" if args.db else "sqlite", args.db, tmp)
            os.environ["RELANCE_DATABASE_URL"] = url
            get_settings.cache_clear()
            engine = get_engine(url)
            targets, people = population(n)
            run: dict[str, object] = {
                "load_before": os.getloadavg()[0],
                "cipher": args.cipher,
                "tick": "member" if args.member_by_member else "sql",
            }
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            with session_scope(engine) as s:
                register_campaign(session=s, definition=d, launched=True)
                counts = admit_targets(
                    session=s, definition=d, targets=targets, people=people, today=launch
                )
            run["admit_s"] = round(time.perf_counter() - t0, 2)
            run["admit_cpu_s"] = round(time.process_time() - cpu0, 2)
            run["admitted"] = counts["admitted"]
            del targets, people
            ticks = (
                ()
                if args.skip_ticks
                else (("launch_tick", launch), ("quiet_tick", launch + timedelta(1)))
            )
            for name, day in ticks:
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                state = cascade_tick(campaign_id=d.id, day=day, return_state=True)
                run[f"{name}_s"] = round(time.perf_counter() - t0, 2)
                run[f"{name}_cpu_s"] = round(time.process_time() - cpu0, 2)
                run[f"{name}_actions"] = state.result().get("actions_written", 0)
                run[f"{name}_task_runs"] = asyncio.run(
                    task_runs_of(state.state_details.flow_run_id)
                )
            if ticks:
                run["delivered"] = _deliver_mailbox(engine, launch + timedelta(1))
            observer = _dispensation_observer(0.3, launch + timedelta(5))
            t0 = time.perf_counter()
            with session_scope(engine) as s:
                rep = observe_goals(
                    session=s,
                    campaign_id=d.id,
                    goal=d.goal,  # type: ignore[arg-type]
                    extract=tmp,
                    observe=observer,
                    today=launch + timedelta(10),
                    now=utcnow(),
                )
            run["observe_s"] = round(time.perf_counter() - t0, 2)
            run["observed"] = rep.observed
            run["closed"] = rep.members_closed
            run["peak_rss_mb"] = _rss_mb()
            run["load_after"] = os.getloadavg()[0]
            print(json.dumps({"people": n, **run}), flush=True)
            runs.append(run)
            engine.dispose()
            if args.db:  # a 2.5 M ledger is ~5 GB: not left behind
                drop_db(args.db, url)
        med = {
            k: statistics.median(float(r[k]) for r in runs)  # type: ignore[arg-type]
            for k in ("admit_s", "admit_cpu_s", "launch_tick_s", "quiet_tick_s", "observe_s")
            if k in runs[0]
        }
        results.append({"people": n, "db": engine.dialect.name, "median": med, "runs": runs})
        print(json.dumps(results[-1]["median"]), flush=True)
    out = Path(args.out) if args.out else ROOT / "bench/results" / f"wave-{results[0]['db']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--db", default=None, help="PostgreSQL admin URL; default SQLite")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--wave",
        action="store_true",
        help="grippe-2026: admission, launch tick, quiet tick, goal observation (fresh db each)",
    )
    ap.add_argument("--skip-ticks", action="store_true", help="wave: admission and observation")
    ap.add_argument("--cipher", choices=("g1", "fernet"), default="g1", help="wave: tokens written")
    ap.add_argument("--out", default="", help="wave: where to write the JSON")
    ap.add_argument(
        "--member-by-member",
        action="store_true",
        help="wave: the tick without its SQL pass for members without history (the reference)",
    )
    args = ap.parse_args()
    if args.wave:
        wave(args)
        return
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
