"""Admission and launch-day tick of a grippe-2026 wave, without Prefect (`tick()` alone).

    uv run python bench/tick/launch.py --size 2500000 --db postgresql://postgres@127.0.0.1:5432/postgres

A fresh PostgreSQL database per run, dropped at the end; prints the two times (seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import drop_db, fresh_db, population


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--db", required=True, help="PostgreSQL admin URL")
    args = ap.parse_args()
    url = fresh_db("postgresql", args.db, Path(tempfile.gettempdir()))
    os.environ["RELANCE_DATABASE_URL"] = url
    from campaigns.cascade.membership import admit_targets
    from campaigns.cascade.tick import tick
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import get_engine, session_scope
    from campaigns.ledger.registry import register_campaign

    d = load_campaign("grippe-2026").definition
    engine = get_engine(url)
    try:
        targets, people = population(args.size)
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            register_campaign(session=s, definition=d, launched=True)
            admit_targets(
                session=s, definition=d, targets=targets, people=people, today=d.dates.start
            )
        admit = time.perf_counter() - t0
        del targets, people
        t0 = time.perf_counter()
        counts = tick(engine=engine, definition=d, today=d.dates.start, workers=2)
        launch = time.perf_counter() - t0
        out = {"people": args.size, "admit_s": round(admit, 1), "launch_tick_s": round(launch, 1)}
        print(json.dumps({**out, "actions": counts.get("actions_written", 0)}), flush=True)
    finally:
        engine.dispose()
        drop_db(args.db, url)


if __name__ == "__main__":
    main()
