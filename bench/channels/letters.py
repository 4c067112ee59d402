"""Benchmark: letters handed to the print house — PDF batches or data files; letters/s, memory.

uv run python bench/channels/letters.py [--letters 5000 --batch 500 --workers 2 --repeat 3]
uv run python bench/channels/letters.py --mode files --letters 100000 --batch 20000 --repeat 3
uv run python bench/channels/letters.py --mode dispatch --letters 1000000 --batch 20000 \
    --db postgresql://postgres@127.0.0.1:5432/postgres --processes 2 --repeat 3

`--mode files`: each batch's letters are built as the dispatcher builds them (the template's
context, its merge fields; HTML rendered only for the samples), then handed to
`PrintFileLetters` (one JSON Lines file + manifest + `--samples` real PDFs per batch). One
batch is in memory at a time, as in the dispatcher. Each repeat runs in its own process so
that its peak memory is its own.

`--mode dispatch`: the whole letter stage from a fresh ledger (claims, send-time checks, data
files, results), by `--processes` dispatcher processes draining the same channel, as
`channel-dispatch` runs on several workers do.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--letters", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--mode", choices=("pdf", "files", "dispatch"), default="pdf")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--processes", type=int, default=1, help="dispatch mode: dispatchers side by side"
    )
    ap.add_argument(
        "--db",
        default=None,
        help="dispatch mode: PostgreSQL admin URL (a fresh database per repeat); default SQLite",
    )
    args = ap.parse_args()
    if args.mode == "files":
        files_main(args)
        return
    if args.mode == "dispatch":
        dispatch_main(args)
        return
    from campaigns.definition.catalog import load_campaign
    from campaigns.definition.rendering import build_context, render_message
    from channels.letters import Letter
    from channels.pdf_letters import PdfLetters

    c = load_campaign("sophia-ald8")
    letters = []
    for i in range(args.letters):
        address = [f"MADAME ANNE MARTIN{i}", f"{i % 180 + 1} RUE DES ECOLES", "93000 BOBIGNY"]
        ctx = build_context(
            definition=c.definition,
            person={
                "civilite": "Mme",
                "nom": f"MARTIN{i}",
                "prenom": "Anne",
                "age": 64,
                "address_lines": address,
                "departement": "93",
            },
            member={
                "anchor_date": date(2026, 6, 15),
                "priority": i % 3 == 0,
                "gaps": ["gap_renal"],
                "echelon": "93",
                "channels_tried": ["phone"],
            },
            step_id="letter",
            attempt=1,
            today=date(2026, 6, 15),
        )
        _, html = render_message(c.env, "letter.html.j2", ctx)
        letters.append(Letter(key=f"bench:{i}:letter:1", address_lines=tuple(address), html=html))
    runs = []
    for _ in range(args.repeat):
        folder = Path(tempfile.mkdtemp())
        printer = PdfLetters(folder, workers=args.workers)
        t0 = time.perf_counter()
        for b in range(0, len(letters), args.batch):
            printer.print_batch(f"batch-{b // args.batch:04d}", letters[b : b + args.batch])
        seconds = time.perf_counter() - t0
        printer.close()
        pages = sum(
            int(row["pages"])
            for m in (folder / "letters").glob("*.manifest.csv")
            for row in csv.DictReader(m.open())
        )
        runs.append({"seconds": round(seconds, 1), "pages": pages})
    seconds = statistics.median(r["seconds"] for r in runs)
    out = {
        "letters": args.letters,
        "batch": args.batch,
        "workers": args.workers,
        "runs": runs,
        "seconds": seconds,
        "letters_per_s": round(args.letters / seconds, 1),
        "pages_per_s": round(runs[0]["pages"] / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        # The largest worker process (rendering), when there are workers.
        "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }
    print(json.dumps(out))
    dest = ROOT / "bench" / "results" / f"letters-{args.workers}w.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")


def _campaign_letters(start: int, n: int) -> list[Any]:
    """N grippe-2026 letters as the dispatcher builds them for a data file."""
    from campaigns.cascade.dispatch import _letter
    from campaigns.definition.catalog import load_campaign
    from campaigns.definition.rendering import build_context

    c = load_campaign("grippe-2026")
    day = date(2026, 12, 3)
    out = []
    for i in range(start, start + n):
        address = [f"MADAME ANNE MARTIN{i}", f"{i % 180 + 1} RUE DES ECOLES", "93000 BOBIGNY"]
        ctx = build_context(
            definition=c.definition,
            person={
                "civilite": "Mme",
                "nom": f"MARTIN{i}",
                "prenom": "Anne",
                "age": 71,
                "address_lines": address,
                "departement": "93",
            },
            member={
                "anchor_date": date(2026, 10, 14),
                "priority": False,
                "gaps": [],
                "echelon": "93",
                "channels_tried": ["mailbox"],
            },
            step_id="letter",
            attempt=1,
            today=day,
        )
        action = SimpleNamespace(key=f"grippe-2026:{i}:letter:1", definition_version=1)
        out.append(_letter(c, action, "letter.html.j2", ctx))  # type: ignore[arg-type]
    return out


def files_one(args: argparse.Namespace) -> dict[str, Any]:
    """One run: build and hand over every batch; the times of each part."""
    from channels.print_files import PrintFileLetters

    folder = Path(tempfile.mkdtemp())
    printer = PrintFileLetters(folder, samples=args.samples)
    build = hand = 0.0
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    for b in range(0, args.letters, args.batch):
        t = time.perf_counter()
        batch = _campaign_letters(b, min(args.batch, args.letters - b))
        build += time.perf_counter() - t
        t = time.perf_counter()
        printer.print_batch(f"grippe-2026-2026-12-03-{b // args.batch:04d}", batch)
        hand += time.perf_counter() - t
        del batch
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (folder / "letters" / "files").glob("*/*.jsonl"))
    shutil.rmtree(folder)
    return {
        "seconds": round(seconds, 1),
        "build_s": round(build, 1),
        "hand_over_s": round(hand, 1),
        "data_mb": round(size / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_before": load_before,
    }


def files_main(args: argparse.Namespace) -> None:
    """Median of `--repeat` runs, each in a fresh process."""
    if args.one:
        out = files_one(args)
        out["load_after"] = os.getloadavg()[0]
        print(json.dumps(out))
        return
    runs = []
    for _ in range(args.repeat):
        cmd = [sys.executable, __file__, "--one", "--mode", "files"]
        cmd += ["--letters", str(args.letters), "--batch", str(args.batch)]
        cmd += ["--samples", str(args.samples)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), file=sys.stderr)
    seconds = statistics.median(r["seconds"] for r in runs)
    out = {
        "mode": "files",
        "letters": args.letters,
        "batch": args.batch,
        "samples_per_batch": args.samples,
        "runs": runs,
        "seconds": seconds,
        "letters_per_s": round(args.letters / seconds),
        "hand_over_letters_per_s": round(
            args.letters / statistics.median(r["hand_over_s"] for r in runs)
        ),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }
    print(json.dumps(out))
    dest = ROOT / "bench" / "results" / f"letters-files-{args.letters}.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")


def _drain_letters(
    url: str, folder: str, batch: int, samples: int, ready: Any = None, go: Any = None
) -> dict[str, int]:
    """One dispatcher draining the day's letters into data files (one process). With `ready`
    and `go`, it says when its imports are done and waits for the start."""
    from bench.channels.dispatch import DAY
    from campaigns.cascade.dispatch import Adapters, dispatch
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine
    from channels.email import FakeEmail
    from channels.mailbox import FakeMailbox
    from channels.print_files import PrintFileLetters

    engine = make_engine(url)
    campaign = load_campaign("sophia-ald8")
    printer = PrintFileLetters(Path(folder), samples=samples)
    adapters = Adapters(mailbox=FakeMailbox(), email=FakeEmail(), letters=printer)
    if ready is not None:
        ready.release()
        go.wait()
    try:
        return dispatch(
            engine=engine,
            campaign=campaign,
            channel="letter",
            adapters=adapters,
            today=DAY,
            batch_size=batch,
        )
    finally:
        engine.dispose()


def _dispatcher(
    url: str, folder: str, batch: int, samples: int, ready: Any, go: Any, out: Any
) -> None:
    out.put(_drain_letters(url, folder, batch, samples, ready, go))


def dispatch_main(args: argparse.Namespace) -> None:
    """The whole letter stage on a fresh ledger (SQLite, or PostgreSQL with `--db`): claim,
    send-time checks, data files, results; `--processes` dispatchers side by side."""
    from sqlalchemy import text

    from bench.channels.dispatch import seed
    from bench.tick.run import drop_db, fresh_db
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine, upgrade

    runs = []
    for _ in range(args.repeat):
        tmp = Path(tempfile.mkdtemp())
        url = fresh_db("postgresql" if args.db else "sqlite", args.db, tmp)
        engine = make_engine(url)
        upgrade(engine)
        seed(engine, load_campaign("sophia-ald8"), args.letters)
        with engine.begin() as c:
            c.execute(
                text(
                    "UPDATE action SET step = 'letter', channel = 'letter', "
                    "key = replace(key, ':mailbox:', ':letter:')"
                )
            )
            if args.db:
                c.execute(text("ANALYZE action"))
        engine.dispose()
        # Dispatchers in separate processes drain the same channel, as flow runs on several
        # workers would (claims are disjoint); started and warm before the clock starts.
        ctx = multiprocessing.get_context("spawn")
        ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        job = (url, str(tmp), args.batch, args.samples, ready, go, out)
        procs = [ctx.Process(target=_dispatcher, args=job) for _ in range(args.processes)]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.acquire()
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        go.set()
        parts = [out.get() for _ in procs]
        seconds = time.perf_counter() - t0
        for proc in procs:
            proc.join()
        if args.db:
            drop_db(args.db, url)
        shutil.rmtree(tmp)
        runs.append(
            {
                "seconds": round(seconds, 1),
                "sent": sum(c.get("sent", 0) for c in parts),
                "processes": args.processes,
                "load_before": load_before,
                "load_after": os.getloadavg()[0],
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr)
    seconds = statistics.median(r["seconds"] for r in runs)
    out_json = {
        "mode": "dispatch",
        "db": "postgresql" if args.db else "sqlite",
        "letters": args.letters,
        "batch": args.batch,
        "processes": args.processes,
        "runs": runs,
        "seconds": seconds,
        "letters_per_s": round(args.letters / seconds),
        "peak_rss_mb_a_dispatcher": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ),
    }
    print(json.dumps(out_json))
    tag = ("-postgresql" if args.db else "") + (f"-p{args.processes}" if args.processes > 1 else "")
    dest = ROOT / "bench" / "results" / f"letters-dispatch-{args.letters}{tag}.json"
    dest.write_text(json.dumps(out_json, indent=2) + "\n")


if __name__ == "__main__":
    main()
