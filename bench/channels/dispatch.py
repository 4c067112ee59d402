"""Benchmark: dispatch throughput per channel through the real adapters, against the mocks.

    uv run python bench/channels/dispatch.py [--people 10000 --repeat 3 --calls 300]

A fresh SQLite ledger gets N members with a queued mailbox message each; the dispatcher then
drains the mailbox channel through `HttpMailbox` (Prism serving docs/api/mailbox.openapi.yaml),
which queues the N notification e-mails, drained through `SendGridEmail` (Prism serving
SendGrid's v3 contract, 1,000 personalizations a request). Phone: `TwilioPhone.bridge` placed
one after the other against Prism serving Twilio's contract. Rate limits are lifted (the
point is what the stack can do); in production the configured limits are the ceiling.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DAY = date(2026, 4, 16)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(engine: Any, campaign: Any, n: int) -> None:
    """N people, members and queued mailbox actions, inserted in bulk."""
    from sqlalchemy import insert
    from sqlmodel import Session
    from stdnum.fr import nir as nir_check

    from campaigns.ledger.actions import action_key
    from campaigns.ledger.models import Action, Member, Person
    from campaigns.ledger.registry import register_campaign

    now = datetime.now(UTC)
    with Session(engine) as s:
        register_campaign(session=s, definition=campaign.definition, launched=True, now=now)
        people, members, actions = [], [], []
        for i in range(1, n + 1):
            body = f"1{60 + i % 30:02d}{1 + i % 12:02d}91{i % 1000:03d}{i % 997 + 1:03d}"
            people.append(
                {
                    "id": i,
                    "ben_nir_psa": f"B{i:09d}",
                    "ben_rng_gem": 1,
                    "nir": body + nir_check.calc_check_digits(body),
                    "civilite": "Mme",
                    "nom": f"NOM{i}",
                    "prenom": "Anne",
                    "address_lines": [f"MME ANNE NOM{i}", "1 RUE DE LA PAIX", "75002 PARIS"],
                    "telephone": "+33612345678",
                    "email": f"p{i}@example.org",
                    "compte_ameli": True,
                    "echelon": "75",
                    "departement": "75",
                    "updated_at": now,
                }
            )
            members.append(
                {
                    "id": i,
                    "campaign_id": campaign.definition.id,
                    "person_id": i,
                    "echelon": "75",
                    "entered_on": DAY,
                    "anchor_date": DAY,
                    "gaps": ["gap_renal"],
                    "status": "active",
                    "last_seen_on": DAY,
                }
            )
            actions.append(
                {
                    "key": action_key(campaign.definition.id, i, "mailbox", 1),
                    "campaign_id": campaign.definition.id,
                    "member_id": i,
                    "person_id": i,
                    "step": "mailbox",
                    "channel": "mailbox",
                    "attempt": 1,
                    "due_on": DAY,
                    "state": "queued",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for table, rows in ((Person, people), (Member, members), (Action, actions)):
            for k in range(0, len(rows), 2000):
                s.execute(insert(table), rows[k : k + 2000])
        s.commit()


def run_once(n: int, calls: int, urls: dict[str, str], tmp: Path) -> dict[str, Any]:
    """One fresh ledger drained through mailbox then e-mail; then `calls` phone bridges."""
    from campaigns.cascade.dispatch import Adapters, dispatch
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine, upgrade
    from channels.letters import FakeLetters
    from channels.mailbox_http import HttpMailbox
    from channels.phone import BridgeCall
    from channels.sendgrid_email import SendGridEmail
    from channels.twilio_phone import TwilioPhone

    engine = make_engine(f"sqlite:///{tmp / f'dispatch-{time.monotonic_ns()}.db'}")
    upgrade(engine)
    campaign = load_campaign("sophia-ald8")
    seed(engine, campaign, n)
    adapters = Adapters(
        mailbox=HttpMailbox(base_url=urls["mailbox"], token="bench", per_second=10_000),
        email=SendGridEmail(
            api_key="SG.bench",
            host=urls["sendgrid"],
            sender="bench@example.org",
            per_second=10_000,
        ),
        letters=FakeLetters(),
    )
    out: dict[str, Any] = {"people": n}
    for channel, batch in (("mailbox", 500), ("email", 1000)):
        t0 = time.perf_counter()
        counts = dispatch(
            engine=engine,
            campaign=campaign,
            channel=channel,
            adapters=adapters,
            today=DAY,
            batch_size=batch,
        )
        dt = time.perf_counter() - t0
        out[channel] = {
            "seconds": round(dt, 2),
            "sent": counts.get("sent", 0),
            "per_second": round(counts.get("sent", 0) / dt, 1),
            "counts": counts,
        }
    phone = TwilioPhone(
        account_sid="AC" + "0" * 32,
        auth_token="bench",
        caller_id="+33100000000",
        status_callback="http://127.0.0.1:9/webhooks/twilio/status",
        api_base=urls["twilio"],
        per_second=10_000,
    )
    t0 = time.perf_counter()
    for i in range(calls):
        phone.bridge(
            BridgeCall(
                key=f"bench:{i}:call:1:dial:1",
                adviser_line="+33100000001",
                callee="+33612345678",
                callback_query=f"key=bench:{i}",
            )
        )
    dt = time.perf_counter() - t0
    out["phone"] = {"seconds": round(dt, 2), "calls": calls, "per_second": round(calls / dt, 1)}
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "channels-dispatch.json"))
    args = ap.parse_args()
    from contextlib import ExitStack

    from tests.contract_mocks import MAILBOX_SPEC, SENDGRID_SPEC, TWILIO_SPEC, prism

    runs = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as d:
        urls = {
            name: stack.enter_context(prism(spec))
            for name, spec in (
                ("mailbox", MAILBOX_SPEC),
                ("sendgrid", SENDGRID_SPEC),
                ("twilio", TWILIO_SPEC),
            )
        }
        for r in range(args.repeat):
            res = run_once(args.people, args.calls, urls, Path(d))
            print(json.dumps({"run": r + 1, **{k: v for k, v in res.items() if k != "people"}}))
            runs.append(res)
    summary = {
        ch: {
            "median_per_second": statistics.median(r[ch]["per_second"] for r in runs),
            "median_seconds": statistics.median(r[ch]["seconds"] for r in runs),
        }
        for ch in ("mailbox", "email", "phone")
    }
    result = {
        "people": args.people,
        "calls": args.calls,
        "runs": runs,
        "median": summary,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({"median": summary, "peak_rss_mb": result["peak_rss_mb"]}, indent=2))


if __name__ == "__main__":
    main()
