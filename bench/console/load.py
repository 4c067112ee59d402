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
CLONE_KEY = "{} || '#' || g"  # a cloned row's key: the original's with '#g' (g = 1..k)
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


def seed_queue(engine: Engine, calls: int) -> int:
    """Grow the queue to at least `calls` queued phone calls, set-based (PostgreSQL): each
    queued call of `prepare` is cloned with its person and member, k times, in three
    INSERT … SELECT statements; the number of queued calls."""
    from campaigns.ledger.models import Member, Person

    with session_scope(engine) as s:
        base = s.exec(
            select(func.count())
            .select_from(Action)
            .where(Action.channel == "phone", Action.state == "queued")
        ).one()
    k = max(0, -(-calls // max(base, 1)) - 1)
    if k:
        person = [c.name for c in Person.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
        member = [c.name for c in Member.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
        action = [c.name for c in Action.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]

        def cols(names: list[str], alias: str, **instead: str) -> str:
            return ", ".join(instead.get(n, f"{alias}.{n}") for n in names)

        # The clones of a person: its key with '#g' appended (g = 1..k).
        clone = f"p1.ben_nir_psa = {CLONE_KEY.format('p0.ben_nir_psa')}"
        clone += " AND p1.ben_rng_gem = p0.ben_rng_gem"
        queued = "a.channel = 'phone' AND a.state = 'queued'"
        action_clone = {
            "key": CLONE_KEY.format("a.key"),
            "person_id": "p1.id",
            "member_id": "m1.id",
        }
        with engine.begin() as c:
            c.exec_driver_sql(
                f"INSERT INTO person ({', '.join(person)}) "
                f"SELECT {cols(person, 'p0', ben_nir_psa=CLONE_KEY.format('p0.ben_nir_psa'))} "
                f"FROM person p0 CROSS JOIN generate_series(1, {k}) g "
                f"WHERE EXISTS (SELECT 1 FROM action a WHERE a.person_id = p0.id AND {queued})"
            )
            c.exec_driver_sql(
                f"INSERT INTO member ({', '.join(member)}) "
                f"SELECT {cols(member, 'm', person_id='p1.id')} FROM member m "
                "JOIN person p0 ON p0.id = m.person_id CROSS JOIN generate_series(1, "
                f"{k}) g JOIN person p1 ON {clone} "
                f"WHERE EXISTS (SELECT 1 FROM action a WHERE a.member_id = m.id AND {queued})"
            )
            c.exec_driver_sql(
                f"INSERT INTO action ({', '.join(action)}) "
                f"SELECT {cols(action, 'a', **action_clone)} "
                "FROM action a JOIN person p0 ON p0.id = a.person_id "
                f"CROSS JOIN generate_series(1, {k}) g "
                f"JOIN person p1 ON {clone} "
                "JOIN member m1 ON m1.person_id = p1.id AND m1.campaign_id = a.campaign_id "
                f"WHERE {queued}"
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    with session_scope(engine) as s:
        return int(
            s.exec(
                select(func.count())
                .select_from(Action)
                .where(Action.channel == "phone", Action.state == "queued")
            ).one()
        )


def card(engine: Engine, action_id: int, adviser: str) -> None:
    """What the call card reads and writes in the database (the web page's queries)."""
    from campaigns.calls.card import claimed_call, earlier_calls, tried_channels
    from campaigns.ledger.audit import record
    from campaigns.ledger.models import Member, Person

    with session_scope(engine) as s:
        a = claimed_call(session=s, action_id=action_id, adviser=adviser)
        if a is None:
            raise CallError(f"card {action_id}: not held by {adviser}")
        m, p = s.get(Member, a.member_id), s.get(Person, a.person_id)
        assert m is not None and p is not None and p.nir
        tried_channels(session=s, member_id=a.member_id)
        earlier_calls(session=s, person_id=a.person_id, before=action_id)
        record(session=s, actor=adviser, action="view_card", target=f"action/{action_id}")


@dataclass
class Part:
    """What one process's advisers did: claims, outcomes and latencies per request kind."""

    claims: list[tuple[int, str]] = field(default_factory=list)
    outcomes: int = 0
    empty: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    kinds: dict[str, list[float]] = field(
        default_factory=lambda: {"claim": [], "card": [], "outcome": []}
    )


def _advisers(
    url: str, names: list[int], start_at: float, seconds: float, seed: int, think: float
) -> Part:
    """The advisers `names` as threads of this process, each with its own connection, doing
    the console's three requests — claim (audited), card (audited), outcome (audited) —
    through the use cases from `start_at` (wall clock) for `seconds`."""
    from sqlalchemy import create_engine

    from campaigns.app.calls import claim_call, record_call_outcome

    engine = create_engine(url, pool_size=len(names) + 2, max_overflow=4)
    d = load_campaign("sophia-ald8").definition
    part = Part()
    lock = threading.Lock()
    # A console worker serves all day: its connections are open and its caches (compiled SQL,
    # the campaigns' definitions) warm before its advisers' first call, not timed here.
    conns = [engine.connect() for _ in names]
    for c in conns:
        c.close()
    warm = f"warmup-{names[0]:02d}"
    for _ in range(2):
        with session_scope(engine) as s:
            claim = claim_call(session=s, actor=warm, now=NOW)
        if claim is not None:
            card(engine, claim.action_id, warm)
            with session_scope(engine) as s:
                record_call_outcome(
                    session=s, actor=warm, action_id=claim.action_id, outcome="busy", now=NOW
                )
    time.sleep(max(0.0, start_at - time.time()))
    began = time.monotonic()
    stop = began + seconds

    def timed(kind: str, t0: float) -> None:
        with lock:
            part.kinds[kind].append((time.perf_counter() - t0) * 1000)

    def adviser(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        name = f"adviser-{n:02d}"
        if think:  # advisers do not all start their day on the same second
            time.sleep(rng.uniform(0, think))
        while time.monotonic() < stop:
            try:
                t0 = time.perf_counter()
                with session_scope(engine) as s:
                    claim = claim_call(session=s, actor=name, now=NOW)
                if claim is None:
                    with lock:
                        part.empty += 1
                    time.sleep(0.05)
                    continue
                timed("claim", t0)
                with lock:
                    part.claims.append((claim.action_id, name))
                t0 = time.perf_counter()
                card(engine, claim.action_id, name)
                timed("card", t0)
                t0 = time.perf_counter()
                with session_scope(engine) as s:
                    record_call_outcome(
                        session=s,
                        actor=name,
                        action_id=claim.action_id,
                        outcome=rng.choice(OUTCOMES),
                        now=NOW,
                        definition=d,
                    )
                timed("outcome", t0)
                with lock:
                    part.outcomes += 1
                if think:
                    time.sleep(rng.uniform(0.5 * think, 1.5 * think))
            except Exception as e:  # counted, never hidden
                with lock:
                    part.errors.append(f"{name}: {type(e).__name__}: {e}"[:200])

    threads = [threading.Thread(target=adviser, args=(i,)) for i in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    part.elapsed = time.monotonic() - began
    engine.dispose()
    return part


def day(
    engine: Engine,
    advisers: int,
    seconds: float,
    seed: int = 1,
    think: float = 0.0,
    processes: int = 1,
) -> dict[str, object]:
    """`advisers` doing the console's three requests for `seconds`, spread over `processes`
    processes (as the console runs several workers: one Python process would time its own
    lock, not the database); p50/p95 per request kind, double claims, lost outcomes."""
    import multiprocessing

    url = engine.url.render_as_string(hide_password=False)
    groups = [list(range(advisers))[i::processes] for i in range(processes)]
    start_at = time.time() + 15.0  # every process connected and warm before the clock starts
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        parts = pool.starmap(
            _advisers, [(url, g, start_at, seconds, seed, think) for g in groups if g]
        )
    elapsed = max(p.elapsed for p in parts)
    result = Result()
    kinds: dict[str, list[float]] = {"claim": [], "card": [], "outcome": []}
    for part in parts:
        result.claims += part.claims
        result.outcomes += part.outcomes
        result.empty += part.empty
        result.errors += part.errors
        for kind, lat in part.kinds.items():
            kinds[kind] += lat
    out = result.summary(engine, elapsed)
    for k in ("claim_p50_ms", "claim_p95_ms", "claim_max_ms"):
        out.pop(k)
    out["processes"] = processes
    out["think_s"] = think
    for kind, lat in kinds.items():
        lat.sort()
        q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [0.0] * 99
        out[f"{kind}_p50_ms"] = round(q[49], 1)
        out[f"{kind}_p95_ms"] = round(q[94], 1)
        out[f"{kind}_max_ms"] = round(lat[-1], 1) if lat else 0.0
        out[f"{kind}_count"] = len(lat)
    return out
