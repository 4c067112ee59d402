"""Benchmark: 40 advisers on PostgreSQL claiming and closing contacts for 60 s.

uv run python bench/console/run.py [--advisers 40 --seconds 60 --people 60000]
uv run python bench/console/run.py --queued 500000 [--people 20000 --processes 2]: the queue
    grown to 500,000 calls (set-based), each adviser's claim → card → outcome timed per request
    kind, in three modes: flat out (no pause), paced (`--think`, 2 s) and a floor's pace
    (`--floor-think`, 10 s a call: still 10–20× a real platform, where a call lasts minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _loadavg() -> str:
    """The 1-, 5- and 15-minute load averages (how busy the shared machine was)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--advisers", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--people", type=int, default=60_000)
    ap.add_argument("--think", type=float, default=2.0, help="mean seconds per paced call")
    ap.add_argument("--queued", type=int, default=0, help="grow the queue to this many calls")
    ap.add_argument("--processes", type=int, default=2, help="processes the advisers share")
    ap.add_argument("--floor-think", type=float, default=10.0, help="seconds per call, floor")
    ap.add_argument("--modes", default="flat,paced,floor")
    ap.add_argument("--out", default="", help="where to write the JSON (bench/results/…)")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    from sqlalchemy import create_engine, text

    admin = args.pg.replace("postgresql://", "postgresql+psycopg://")
    name = f"relance_load_{uuid.uuid4().hex[:8]}"
    with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    # One connection per adviser, as 40 console workers would hold.
    engine = create_engine(
        admin.rsplit("/", 1)[0] + "/" + name, pool_size=args.advisers + 5, max_overflow=10
    )
    try:
        _measure(engine, args)
    finally:
        # Each run seeds up to 500,000 calls: its database does not outlive it.
        engine.dispose()
        with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _measure(engine: Any, args: argparse.Namespace) -> None:
    """Seed the queue, run the advisers in each mode asked, write the JSON."""
    from bench.console.load import day, prepare, run, seed_queue
    from campaigns.ledger.db import upgrade

    upgrade(engine)
    prepare(engine, args.people)
    if args.queued:
        t = time.perf_counter()
        queued = seed_queue(engine, args.queued)
        seeded_s = round(time.perf_counter() - t, 1)
        out: dict[str, object] = {
            "advisers": args.advisers,
            "queued_calls": queued,
            "seeded_in_s": seeded_s,
            "loadavg_start": _loadavg(),
        }
        modes = args.modes.split(",")
        n, sec = args.advisers, args.seconds
        if "flat" in modes:
            out["flat_out"] = day(engine, n, sec, processes=args.processes)
        if "paced" in modes:
            out[f"paced_{args.think}s"] = day(
                engine, n, sec, seed=2, think=args.think, processes=args.processes
            )
        if "floor" in modes:
            # Long enough for each adviser to make several calls at the floor's pace.
            out[f"floor_{args.floor_think}s"] = day(
                engine,
                n,
                max(sec, 12 * args.floor_think),
                seed=3,
                think=args.floor_think,
                processes=args.processes,
            )
        out["loadavg_end"] = _loadavg()
        print(json.dumps(out, indent=2))
        dest = Path(args.out) if args.out else ROOT / "bench/results/console-load-queued.json"
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
