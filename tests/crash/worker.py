"""One dispatcher, tick or enrolment run, as a process the crash driver can SIGKILL.

    python tests/crash/worker.py dispatch --db URL --channel mailbox --url MOCK [--batch 50]
    python tests/crash/worker.py tick --db URL --day 2026-04-16 [--batch 200]
    python tests/crash/worker.py enrol --db URL --day 2026-04-16 --file F1 --file F2 ...

It prints `ready` once its imports are done and its engine is up (the driver times its kill
from there), does the whole job, prints its counts as JSON and exits 0. It is only started
after the previous one was killed, so the dispatcher takes back every `sending` row at once
(`stale_after=timedelta(0)`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CAMPAIGN = "sophia-ald8"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["dispatch", "tick", "enrol"])
    ap.add_argument("--db", required=True)
    ap.add_argument("--day", default="2026-04-16")
    ap.add_argument("--channel", default="mailbox", choices=["mailbox", "email"])
    ap.add_argument("--url", default="")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument(
        "--mailbox-batch",
        type=int,
        default=0,
        help="messages a mailbox batch deposit (default: a quarter of --batch, 4 in flight)",
    )
    ap.add_argument("--per-second", type=float, default=100_000, help="provider requests/s")
    ap.add_argument("--file", dest="files", action="append", default=[])
    args = ap.parse_args(argv)

    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine

    day = date.fromisoformat(args.day)
    campaign = load_campaign(CAMPAIGN)
    engine = make_engine(args.db)
    counts: Mapping[str, object]
    if args.mode == "dispatch":
        from campaigns.cascade.dispatch import Adapters, dispatch
        from channels.letters import FakeLetters
        from channels.mailbox_http import HttpMailbox
        from channels.sendgrid_email import SendGridEmail

        adapters = Adapters(
            mailbox=HttpMailbox(base_url=args.url, token="crash", per_second=args.per_second),
            email=SendGridEmail(
                api_key="SG.crash",
                host=args.url,
                sender="relance@example.org",
                per_second=args.per_second,
            ),
            letters=FakeLetters(),
            # Several batch deposits in flight per claim: a kill lands between and during them.
            mailbox_batch=args.mailbox_batch or max(1, min(500, args.batch // 4)),
            mailbox_in_flight=4,
        )
        print("ready", flush=True)
        counts = dispatch(
            engine=engine,
            campaign=campaign,
            channel=args.channel,
            adapters=adapters,
            today=day,
            batch_size=args.batch,
            stale_after=timedelta(0),
        )
    elif args.mode == "tick":
        from campaigns.cascade.tick import tick

        print("ready", flush=True)
        counts = dict(
            tick(engine=engine, definition=campaign.definition, today=day, batch_size=args.batch)
        )
    else:
        from campaigns.app.stages import enrolment_stage

        print("ready", flush=True)
        counts = enrolment_stage(
            engine=engine,
            campaign=campaign,
            files=[Path(f) for f in args.files],
            day=day,
            # A fixed clock: the interrupted run and the reference close members the same day.
            now=datetime.combine(day, time(12), tzinfo=UTC),
        )
    engine.dispose()
    print(json.dumps(counts, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
