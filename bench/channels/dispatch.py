"""Benchmark: dispatch throughput per channel through the real adapters, against the mocks.

    uv run python bench/channels/dispatch.py [--people 10000 --repeat 3 --calls 300]
        [--provider contract|fake] [--mailbox single|batch] [--in-flight 4]
        [--db postgresql://postgres@127.0.0.1:5432/postgres]

A fresh SQLite ledger (with `--db`, a fresh PostgreSQL database: a copy of one seeded once,
`CREATE DATABASE … TEMPLATE`, analysed) gets N members with a queued mailbox message each;
the dispatcher then
drains the mailbox channel, which queues the N notification e-mails, drained in turn.
`--provider contract`: mailbox through `HttpMailbox` against the provider mock of the crash
tests (it honours each key, in front of Prism serving docs/api/mailbox.openapi.yaml, which
checks every request against the contract); e-mail through `SendGridEmail` (Prism serving
SendGrid's v3 contract, 1,000 personalizations a request); phone: `TwilioPhone.bridge` placed
one after the other against Prism serving Twilio's contract. `--provider fake`: the in-memory
fakes (what the dispatcher itself costs). `--mailbox single` deposits one message a request,
one after the other (the code before issue 18); `batch` deposits 500 a request, `--in-flight`
at once. `--alone N`: the adapters alone measured on N messages (100,000; 0 = --people).
Rate limits are lifted (the point is what the stack can do); in production the
configured limits are the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DAY = date(2026, 4, 16)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(engine: Any, campaign: Any, n: int, chunk: int = 50_000) -> None:
    """N people, members and queued mailbox actions, inserted in bulk, `chunk` at a time."""
    from sqlalchemy import insert
    from sqlmodel import Session
    from stdnum.fr import nir as nir_check

    from campaigns.ledger.actions import action_key
    from campaigns.ledger.models import Action, Member, Person
    from campaigns.ledger.registry import register_campaign

    now = datetime.now(UTC)
    with Session(engine) as s:
        register_campaign(session=s, definition=campaign.definition, launched=True, now=now)
        s.commit()
    # PostgreSQL: the first `chunk` rows from Python (each NIR encrypted), the rest copied from
    # them in SQL with their own ids, names, addresses and keys (the encrypted contact details
    # repeat every `chunk` people): a region's 2.5 M in minutes instead of most of an hour.
    built = min(n, chunk) if engine.dialect.name == "postgresql" else n
    for start in range(1, built + 1, chunk):
        people, members, actions = [], [], []
        for i in range(start, min(built, start + chunk - 1) + 1):
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
        with Session(engine) as s:
            for table, rows in ((Person, people), (Member, members), (Action, actions)):
                for k in range(0, len(rows), 2000):
                    s.execute(insert(table), rows[k : k + 2000])
            s.commit()
    if n > built:
        _copy_rows(engine, campaign.definition.id, built, n)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            # Statistics as autovacuum leaves them soon after the tick's inserts, every run alike.
            c.exec_driver_sql("ANALYZE")


def _copy_rows(engine: Any, campaign_id: str, built: int, n: int, step: int = 250_000) -> None:
    """PostgreSQL: people, members and actions `built`+1..n as copies of the first `built`."""
    from sqlalchemy import text

    from campaigns.ledger.models import Action, Member, Person

    # Every column copied from row 1 + (g - 1) % built, except what makes row g its own.
    own = {
        "person": {
            "id": "g",
            "ben_nir_psa": "'B' || lpad(g::text, 9, '0')",
            "nom": "'NOM' || g",
            "address_lines": "json_build_array('MME ANNE NOM' || g, '1 RUE DE LA PAIX', "
            "'75002 PARIS')",
        },
        "member": {"id": "g", "person_id": "g"},
        "action": {
            "id": "nextval(pg_get_serial_sequence('action', 'id'))",
            "key": f"'{campaign_id}:' || g || ':mailbox:1'",
            "member_id": "g",
            "person_id": "g",
        },
    }
    link = {"person": "id", "member": "id", "action": "member_id"}
    statements = []
    for model in (Person, Member, Action):
        table = model.__table__  # type: ignore[attr-defined]
        names = [c.name for c in table.columns]
        values = [own[table.name].get(c, f"t.{c}") for c in names]
        statements.append(
            text(
                f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(values)} "
                f"FROM generate_series(:lo, :hi) g JOIN {table.name} t "
                f"ON t.{link[table.name]} = 1 + (g - 1) % :built ORDER BY g"
            )
        )
    with engine.begin() as c:
        for lo in range(built + 1, n + 1, step):
            for stmt in statements:
                c.execute(stmt, {"lo": lo, "hi": min(n, lo + step - 1), "built": built})
        for name in ("person", "member"):
            seq = f"pg_get_serial_sequence('{name}', 'id')"
            c.exec_driver_sql(f"SELECT setval({seq}, (SELECT max(id) FROM {name}))")


class SingleDeposits:
    """The mailbox as before issue 18: one request a message, one after the other."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def deposit_batch(self, messages: Any) -> Any:
        from channels.mailbox import deposit_each

        return deposit_each(self.inner.deposit, messages)

    def read_status(self, provider_id: str) -> str:
        return str(self.inner.read_status(provider_id))


def seeded_template(pg_admin: str, n: int) -> str:
    """A PostgreSQL database seeded once with N queued messages, to clone for each run."""
    from bench.tick.run import drop_db, fresh_db
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine, upgrade

    url = fresh_db("postgresql", pg_admin, Path("."))
    engine = make_engine(url)
    try:
        upgrade(engine)
        seed(engine, load_campaign("sophia-ald8"), n)
    except BaseException:
        drop_db(pg_admin, url)  # WITH (FORCE): the pool's connections go with it
        raise
    finally:
        engine.dispose()
    return url


def run_once(
    n: int, calls: int, urls: dict[str, str], tmp: Path, opts: Any, template: str | None = None
) -> dict[str, Any]:
    """One fresh ledger drained through mailbox then e-mail; then `calls` phone bridges."""
    from bench.tick.run import drop_db, fresh_db
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine, upgrade

    campaign = load_campaign("sophia-ald8")
    t0 = time.perf_counter()
    url = fresh_db("postgresql" if opts.db else "sqlite", opts.db, tmp, template)
    engine = make_engine(url)
    if template is None:
        upgrade(engine)
        seed(engine, campaign, n)
    seeded = round(time.perf_counter() - t0, 1)
    try:
        return _drain(engine, campaign, n, calls, urls, opts, seeded)
    finally:
        engine.dispose()
        if opts.db:
            drop_db(opts.db, url)


def _drain(
    engine: Any, campaign: Any, n: int, calls: int, urls: dict[str, str], opts: Any, seeded: float
) -> dict[str, Any]:
    """Mailbox then e-mail drained by the real dispatcher; then `calls` phone bridges."""
    from campaigns.cascade.dispatch import Adapters, dispatch
    from channels.email import FakeEmail
    from channels.letters import FakeLetters
    from channels.mailbox import FakeMailbox
    from channels.mailbox_http import HttpMailbox
    from channels.phone import BridgeCall
    from channels.sendgrid_email import SendGridEmail
    from channels.twilio_phone import TwilioPhone

    mailbox: Any
    email: Any
    if opts.provider == "fake":
        mailbox, email = FakeMailbox(), FakeEmail()
    else:
        mailbox = HttpMailbox(base_url=urls["mailbox"], token="bench", per_second=100_000)
        email = SendGridEmail(
            api_key="SG.bench",
            host=urls["sendgrid"],
            sender="bench@example.org",
            per_second=10_000,
        )
    single = opts.mailbox == "single"
    adapters = Adapters(
        mailbox=SingleDeposits(mailbox) if single else mailbox,
        email=email,
        letters=FakeLetters(),
        mailbox_in_flight=1 if single else opts.in_flight,
        mailbox_batch=500 if single else opts.mailbox_batch,
    )
    out: dict[str, Any] = {"people": n, "seed_seconds": seeded}
    claim = 500 if single else opts.mailbox_batch * opts.in_flight
    for channel, batch in (("mailbox", claim), ("email", 1000)):
        t0 = time.perf_counter()
        counts = dispatch(
            engine=engine,
            campaign=campaign,
            channel=channel,
            adapters=adapters,
            today=DAY,
            batch_size=batch,
            # Passed only when asked: the same bench then runs the code before lanes existed.
            **({"lanes": opts.lanes} if opts.lanes != 1 else {}),
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
        api_base=urls.get("twilio", "http://127.0.0.1:9"),
        per_second=10_000,
    )
    t0 = time.perf_counter()
    for i in range(calls if opts.provider == "contract" else 0):
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
    if opts.provider == "fake":
        out["phone"] = {"seconds": 0, "calls": 0, "per_second": 0}
    return out


def adapters_alone(n: int, urls: dict[str, str], opts: Any) -> dict[str, Any]:
    """The adapters without the ledger: N mailbox messages and N same-content e-mails."""
    from concurrent.futures import ThreadPoolExecutor

    from campaigns.definition.catalog import load_campaign
    from campaigns.definition.rendering import render_message, sample_context
    from channels.email import EmailMessage, FakeEmail
    from channels.mailbox import FakeMailbox, MailboxMessage
    from channels.mailbox_http import HttpMailbox
    from channels.sendgrid_email import SendGridEmail
    from tests.factories import valid_nir

    # The campaign's own mailbox message and notice (a 1.2 KB body, as the dispatcher sends):
    # what the contract mock costs grows with the size of what it checks.
    campaign = load_campaign("sophia-ald8")
    subject, body = render_message(
        campaign.env, "mailbox_message.md.j2", sample_context(campaign.definition, "mailbox")
    )
    mail_subject, mail_text = render_message(
        campaign.env,
        "notification_email.txt.j2",
        sample_context(campaign.definition, "mailbox_notice"),
    )
    tag = time.monotonic_ns()  # fresh keys: the mock in front of Prism would replay old ones
    msgs = [
        MailboxMessage(
            key=f"sophia-ald8:{tag}{i}:mailbox:1",
            recipient=valid_nir(i),
            subject=subject,
            body=body,
        )
        for i in range(n)
    ]
    mails = [
        EmailMessage(
            key=f"sophia-ald8:{tag}{i}:notice:1",
            to=f"p{i}@example.org",
            subject=mail_subject,
            text=mail_text,
        )
        for i in range(n)
    ]
    box: Any = (
        FakeMailbox()
        if opts.provider == "fake"
        else HttpMailbox(base_url=urls["mailbox"], token="bench", per_second=100_000)
    )
    email: Any = (
        FakeEmail()
        if opts.provider == "fake"
        else SendGridEmail(
            api_key="SG.bench", host=urls["sendgrid"], sender="bench@example.org", per_second=10_000
        )
    )
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    if opts.mailbox == "single":
        sent = sum(1 for m in msgs if box.deposit(m))
    else:
        chunks = [msgs[i : i + 500] for i in range(0, n, 500)]
        with ThreadPoolExecutor(opts.in_flight) as pool:
            sent = sum(
                1
                for rs in pool.map(box.deposit_batch, chunks)
                for r in rs
                if hasattr(r, "provider_id")
            )
    dt = time.perf_counter() - t0
    out["mailbox"] = {"seconds": round(dt, 2), "sent": sent, "per_second": round(sent / dt, 1)}
    t0 = time.perf_counter()
    sent = sum(1 for r in email.send(mails) if hasattr(r, "provider_id"))
    dt = time.perf_counter() - t0
    out["email"] = {"seconds": round(dt, 2), "sent": sent, "per_second": round(sent / dt, 1)}
    return out


def _serve_mock(upstream: str, kind: str, urls: Any, stop: Any) -> None:
    from tests.crash.idempotent_mock import provider_mock

    with provider_mock(upstream, kind) as mock:
        urls.send(mock.url)
        stop.wait()


@contextmanager
def mock_process(upstream: str, kind: str) -> Iterator[str]:
    """The provider mock in a process of its own (a provider is not in our process: in the
    dispatcher's, its Python would compete for the dispatcher's GIL); yields its URL."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ours, theirs = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve_mock, args=(upstream, kind, theirs, stop), daemon=True)
    proc.start()
    try:
        yield str(ours.recv())
    finally:
        stop.set()
        proc.join(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--provider", choices=["contract", "fake"], default="contract")
    ap.add_argument("--mailbox", choices=["single", "batch"], default="batch")
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--mailbox-batch", type=int, default=500, help="messages a batch deposit")
    ap.add_argument("--lanes", type=int, default=2, help="dispatch loops side by side")
    ap.add_argument(
        "--mock-in-bench",
        action="store_true",
        help="run the mailbox provider mock in this process (as before 2026-12-05)",
    )
    ap.add_argument(
        "--db",
        default=None,
        help="PostgreSQL admin URL (a fresh database per run, dropped after); SQLite if absent",
    )
    ap.add_argument(
        "--alone",
        type=int,
        default=100_000,
        help="messages for the adapters-alone measure (at most --people; 0: --people)",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "channels-dispatch.json"))
    args = ap.parse_args()
    from contextlib import ExitStack

    from tests.contract_mocks import MAILBOX_SPEC, SENDGRID_SPEC, TWILIO_SPEC, prism
    from tests.crash.idempotent_mock import provider_mock

    runs = []
    alone = min(args.people, args.alone) if args.alone else args.people
    template: str | None = None
    with ExitStack() as stack, tempfile.TemporaryDirectory() as d:
        urls: dict[str, str] = {}
        if args.provider == "contract":
            urls = {
                name: stack.enter_context(prism(spec))
                for name, spec in (
                    ("mailbox", MAILBOX_SPEC),
                    ("sendgrid", SENDGRID_SPEC),
                    ("twilio", TWILIO_SPEC),
                )
            }
        prism_mailbox = urls.get("mailbox", "")
        if args.db:
            from bench.tick.run import drop_db

            t0 = time.perf_counter()
            template = seeded_template(args.db, args.people)
            stack.callback(drop_db, args.db, template)
            print(json.dumps({"seeded_template_seconds": round(time.perf_counter() - t0, 1)}))
        for r in range(args.repeat):
            with ExitStack() as per_run:
                if args.provider == "contract":
                    # Prism answers its example to every batch: the mock in front gives each
                    # key its own result (and absorbs replays), as the service does. One per
                    # run: it keeps every key it saw (millions over a region's runs).
                    if args.mock_in_bench:
                        mock = per_run.enter_context(provider_mock(prism_mailbox, "mailbox"))
                        urls["mailbox"] = mock.url
                    else:
                        urls["mailbox"] = per_run.enter_context(
                            mock_process(prism_mailbox, "mailbox")
                        )
                res = run_once(args.people, args.calls, urls, Path(d), args, template)
                res["adapters_alone"] = adapters_alone(alone, urls, args)
            print(json.dumps({"run": r + 1, **{k: v for k, v in res.items() if k != "people"}}))
            runs.append(res)
    summary = {
        ch: {
            "median_per_second": statistics.median(r[ch]["per_second"] for r in runs),
            "median_seconds": statistics.median(r[ch]["seconds"] for r in runs),
        }
        for ch in ("mailbox", "email", "phone")
    }
    summary["adapters_alone"] = {
        ch: statistics.median(r["adapters_alone"][ch]["per_second"] for r in runs)
        for ch in ("mailbox", "email")
    }
    result = {
        "provider": args.provider,
        "mailbox_mode": args.mailbox,
        "in_flight": args.in_flight,
        "lanes": args.lanes,
        "mailbox_mock": "bench process" if args.mock_in_bench else "own process",
        "mailbox_batch": args.mailbox_batch,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "db": "postgresql" if args.db else "sqlite",
        "people": args.people,
        "adapters_alone_messages": alone,
        "calls": args.calls,
        "runs": runs,
        "median": summary,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({"median": summary, "peak_rss_mb": result["peak_rss_mb"]}, indent=2))


if __name__ == "__main__":
    main()
