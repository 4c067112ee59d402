"""Benchmark: the demo's targeting stage with and without the explanations stored at admission.

Plays the sophia demo's first days (its 200,000 synthetic insured by default) twice, in two
ledgers: once as the stage runs, once with the explanation pass switched off; prints each
day's stage time, the members admitted and the explanations stored.

uv run python bench/targeting/admission_explanations.py [--people 200000 --days 5] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    os.environ["RELANCE_DATA_DIR"] = str(tmp)
    # Imported after the data folder is set (the script runs from anywhere).
    from sqlmodel import func, select

    import campaigns.app.stages as stages
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import make_engine, session_scope, upgrade
    from campaigns.ledger.models import MemberExplanation
    from targeting.synth import write_extract

    campaign = load_campaign("sophia-ald8")
    first = campaign.definition.dates.start
    extract = tmp / "extract"
    write_extract(out=extract, people=args.people, seed=2016, as_of=first, fmt="parquet")
    real = stages.store_admission_explanations
    out: dict[str, list[dict[str, float | int]]] = {}
    for label, explain in (("without", False), ("with", True)):
        engine = make_engine(f"sqlite:///{tmp / (label + '.db')}")
        upgrade(engine)
        stages.register(engine=engine, campaign=campaign)
        stages.store_admission_explanations = real if explain else (lambda **_: 0)  # type: ignore[assignment]
        out[label] = []
        for i in range(args.days):
            t = time.perf_counter()
            counts = stages.targeting_stage(
                engine=engine, campaign=campaign, extract=extract, day=first + timedelta(i)
            )
            with session_scope(engine) as s:
                stored = s.exec(select(func.count()).select_from(MemberExplanation)).one()
            out[label].append(
                {
                    "s": round(time.perf_counter() - t, 2),
                    "admitted": int(counts.get("admitted", 0)),
                    "explanations": int(stored),
                }
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
