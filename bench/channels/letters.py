"""Benchmark: PDF print batches — letters (pages) per second and peak memory.

uv run python bench/channels/letters.py [--letters 5000 --batch 500 --workers 2 --repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--letters", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
