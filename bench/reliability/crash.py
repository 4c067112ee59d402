"""Crash campaigns at the issue's sizes: SIGKILL the dispatcher, the tick and the enrolment
ingestion at random points, restart PostgreSQL under the dispatcher; check every message
took effect once (counted on the mock side) and the ledger agrees.

    uv run python bench/reliability/crash.py [--messages 10000 --kills 20 --seed 1]
                                             [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]

Writes bench/results/crash.json (figures in docs/reliability.md). Exits 1 if any campaign
found a problem. Restarting PostgreSQL needs root (pg_ctlcluster); `--pg ''` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tick-members", type=int, default=20_000)
    ap.add_argument("--enrolments", type=int, default=20_000)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "crash.json"))
    args = ap.parse_args()

    from tests.contract_mocks import MAILBOX_SPEC, SENDGRID_SPEC, prism
    from tests.crash.driver import (
        drop_pg_database,
        fresh_pg_database,
        run_crash_campaign,
        run_enrolment_campaign,
        run_tick_campaign,
    )

    results: dict[str, Any] = {"seed": args.seed}

    def done(name: str, r: dict[str, Any]) -> None:
        results[name] = r
        print(json.dumps({name: r}, default=str), flush=True)

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with prism(MAILBOX_SPEC) as mailbox:
            done(
                "mailbox_sqlite_sigkill",
                run_crash_campaign(
                    args.messages,
                    args.kills,
                    f"sqlite:///{tmp / 'mailbox.db'}",
                    upstream=mailbox,
                    batch=args.batch,
                    seed=args.seed,
                ),
            )
            if args.pg and os.geteuid() == 0:
                name = f"relance_crash_{uuid.uuid4().hex[:8]}"
                url = fresh_pg_database(args.pg, name)
                try:
                    done(
                        "mailbox_postgresql_restart_and_sigkill",
                        run_crash_campaign(
                            args.messages,
                            max(1, args.kills // 4),
                            url,
                            upstream=mailbox,
                            batch=args.batch,
                            seed=args.seed + 1,
                            pg_restarts=2,
                        ),
                    )
                finally:
                    drop_pg_database(args.pg, name)
        with prism(SENDGRID_SPEC) as sendgrid:
            done(
                "email_sendgrid_sqlite_sigkill",
                run_crash_campaign(
                    args.messages,
                    args.kills,
                    f"sqlite:///{tmp / 'email.db'}",
                    upstream=sendgrid,
                    channel="email",
                    batch=args.batch,
                    seed=args.seed + 2,
                    delay=(0.2, 1.0),
                ),
            )
        done(
            "tick_sqlite_sigkill",
            run_tick_campaign(
                args.tick_members,
                max(1, args.kills // 2),
                tmp,
                seed=args.seed + 3,
                batch=500,
                delay=(0.2, 2.0),
            ),
        )
        done(
            "enrolments_sqlite_sigkill",
            run_enrolment_campaign(
                args.enrolments,
                args.tick_members,
                max(1, args.kills // 2),
                tmp,
                seed=args.seed + 4,
                files=20,
                delay=(0.2, 1.5),
            ),
        )
    campaigns = [v for v in results.values() if isinstance(v, dict)]
    results["totals"] = {
        "faults_injected": sum(c.get("kills", 0) + c.get("db_restarts", 0) for c in campaigns),
        "sigkills": sum(c.get("kills", 0) for c in campaigns),
        "db_restarts": sum(c.get("db_restarts", 0) for c in campaigns),
        "messages_checked": sum(c.get("messages", 0) for c in campaigns),
        "problems": sum(len(c["problems"]) for c in campaigns),
        "seconds": round(time.monotonic() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results["totals"]), flush=True)
    return 1 if results["totals"]["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
