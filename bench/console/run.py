"""Benchmark: 40 advisers on PostgreSQL claiming and closing contacts for 60 s.

uv run python bench/console/run.py [--advisers 40 --seconds 60 --people 60000]
uv run python bench/console/run.py --queued 500000 [--people 20000]: the queue grown to
    500,000 calls (set-based), each adviser's claim → card → outcome timed per request kind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--advisers", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--people", type=int, default=60_000)
    ap.add_argument("--think", type=float, default=2.0, help="mean seconds per paced call")
    ap.add_argument("--queued", type=int, default=0, help="grow the queue to this many calls")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    from sqlalchemy import create_engine, text

    from bench.console.load import day, prepare, run, seed_queue
    from campaigns.ledger.db import upgrade

    admin = args.pg.replace("postgresql://", "postgresql+psycopg://")
    name = f"relance_load_{uuid.uuid4().hex[:8]}"
    with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    # One connection per adviser, as 40 console workers would hold.
    engine = create_engine(
        admin.rsplit("/", 1)[0] + "/" + name, pool_size=args.advisers + 5, max_overflow=10
    )
    upgrade(engine)
    prepare(engine, args.people)
    if args.queued:
        t = time.perf_counter()
        queued = seed_queue(engine, args.queued)
        seeded_s = round(time.perf_counter() - t, 1)
        out = {
            "advisers": args.advisers,
            "queued_calls": queued,
            "seeded_in_s": seeded_s,
            "flat_out": day(engine, args.advisers, args.seconds),
            f"paced_{args.think}s": day(
                engine, args.advisers, args.seconds, seed=2, think=args.think
            ),
        }
        print(json.dumps(out, indent=2))
        dest = ROOT / "bench" / "results" / "console-load-queued.json"
        dest.write_text(json.dumps(out, indent=2) + "\n")
        return
    # Flat out (no time between calls), then paced (each adviser spends ~think s per call).
    out = {
        "advisers": args.advisers,
        "people": args.people,
        "flat_out": run(engine, args.advisers, args.seconds),
        f"paced_{args.think}s": run(engine, args.advisers, args.seconds, seed=2, think=args.think),
    }
    print(json.dumps(out, indent=2))
    dest = ROOT / "bench" / "results" / "console-load.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
