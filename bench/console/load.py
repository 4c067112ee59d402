"""Many advisers claiming and closing calls at once: double claims, lost outcomes, latency.

Each simulated adviser is a thread with its own database connection that loops: claim the
next contact (the console's `claim_next`), record an outcome (`record_outcome`), again.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from campaigns.calls.queue import CallError, claim_next, record_outcome
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import DONE, Action
from campaigns.ledger.registry import register_campaign

PARIS = ZoneInfo("Europe/Paris")
ANCHOR = date(2026, 6, 15)
CALL_DAY = date(2026, 4, 20)  # a Monday
NOW = datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)
OUTCOMES = ("no_answer", "busy", "voicemail", "refused", "will_enrol_online", "enrolled_on_call")


@dataclass
class Result:
    """What the advisers did and saw."""

    claims: list[tuple[int, str]] = field(default_factory=list)
    outcomes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    empty: int = 0

    def summary(self, engine: Engine, seconds: float) -> dict[str, object]:
        """Counts, double claims, outcomes in the ledger, latency percentiles."""
        per_action = Counter(a for a, _ in self.claims)
        mine = [a for a, _ in self.claims]
        with Session(engine) as s:
            done = sum(
                s.exec(
                    select(func.count())
                    .select_from(Action)
                    .where(Action.state == DONE, col(Action.id).in_(mine[i : i + 5000]))
                ).one()
                for i in range(0, len(mine), 5000)
            )
        lat = sorted(self.latencies_ms)
        q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
        return {
            "seconds": round(seconds, 1),
            "claims": len(self.claims),
            "double_claims": sum(1 for n in per_action.values() if n > 1),
            "outcomes_recorded": self.outcomes,
            "outcomes_in_ledger": int(done),
            "lost_outcomes": self.outcomes - int(done),
            "claim_p50_ms": round(q[49], 1),
            "claim_p95_ms": round(q[94], 1),
            "claim_max_ms": round(lat[-1], 1) if lat else 0.0,
            "claims_per_s": round(len(self.claims) / seconds, 1),
            "nobody_callable": self.empty,
            "errors": self.errors[:5],
        }


def prepare(engine: Engine, people: int) -> None:
    """A launched campaign with `people` callable on CALL_DAY."""
    from tests.factories import population

    d = load_campaign("sophia-ald8").definition
    targets, persons = population(people, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True)
        admit_targets(
            session=s,
            definition=d,
            targets=targets,
            people=persons,
            today=CALL_DAY - timedelta(days=1),
        )
    tick(engine=engine, definition=d, today=CALL_DAY)
    if engine.dialect.name == "postgresql":
        # Fresh statistics, as autovacuum or the nightly ANALYZE would leave them.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")


def run(
    engine: Engine, advisers: int, seconds: float, seed: int = 1, think: float = 0.0
) -> dict[str, object]:
    """`advisers` threads claiming and closing for `seconds`, pausing `think` s per call."""
    d = load_campaign("sophia-ald8").definition
    defs = {d.id: d}
    result = Result()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def adviser(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        name = f"adviser-{n:02d}"
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                with session_scope(engine) as s:
                    claim = claim_next(session=s, adviser=name, now=NOW, definitions=defs)
                ms = (time.perf_counter() - t0) * 1000
                if claim is None:
                    with lock:
                        result.empty += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    result.claims.append((claim.action_id, name))
                    result.latencies_ms.append(ms)
                with session_scope(engine) as s:
                    record_outcome(
                        session=s,
                        action_id=claim.action_id,
                        adviser=name,
                        outcome=rng.choice(OUTCOMES),
                        now=NOW,
                        definition=d,
                    )
                with lock:
                    result.outcomes += 1
                if think:
                    time.sleep(rng.uniform(0.5 * think, 1.5 * think))
            except (CallError, Exception) as e:  # counted, never hidden
                with lock:
                    result.errors.append(f"{name}: {type(e).__name__}: {e}"[:200])

    threads = [threading.Thread(target=adviser, args=(i,)) for i in range(advisers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result.summary(engine, time.monotonic() - t0)
