"""Crash campaigns: run a worker, SIGKILL it at random points, restart it, check the result.

Used by tests/test_crash_safety.py (modest sizes) and bench/reliability/crash.py (the
issue's sizes). Each campaign returns a dict of figures and a list of `problems`; an empty
list is the claim "nothing lost, nothing sent twice".
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("worker.py")
DAY = date(2026, 4, 16)
CAMPAIGN = "sophia-ald8"
# The seeding side and the worker must read personal data with the same key.
TEST_DATA_KEYS = "dGVzdC1vbmx5LWtleS1yZWxhbmNlLWNvbnRhY3QtZGE="
PG_CLUSTER_VERSION_DIR = Path("/etc/postgresql")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RELANCE_DATA_KEYS", TEST_DATA_KEYS)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Runs:
    """How a job went: the kills that landed on a live worker, restarts, DB restarts."""

    kills: int = 0
    kills_missed: int = 0
    worker_starts: int = 0
    worker_failures: int = 0
    db_restarts: int = 0
    last_counts: dict[str, Any] = field(default_factory=dict)


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> bool:
    assert proc.stdout is not None
    return proc.stdout.readline().strip() == "ready"


def run_with_kills(
    args: list[str],
    *,
    kills: int,
    rng: random.Random,
    delay: tuple[float, float] = (0.2, 2.0),
    runs: Runs | None = None,
    max_final_starts: int = 5,
) -> Runs:
    """Start the worker, SIGKILL it after a random delay, `kills` times; then let it finish."""
    runs = runs or Runs()
    for _ in range(kills):
        proc = _start(args)
        runs.worker_starts += 1
        _wait_ready(proc)
        time.sleep(rng.uniform(*delay))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            runs.kills += 1
        else:
            proc.wait()
            runs.kills_missed += 1  # it was already done: nothing left to interrupt
        proc.communicate()
    return finish(args, runs=runs, max_starts=max_final_starts)


def finish(args: list[str], *, runs: Runs, max_starts: int = 5) -> Runs:
    """Run the worker to completion (restarting it if it fails, e.g. on a DB restart)."""
    for _ in range(max_starts):
        proc = _start(args)
        runs.worker_starts += 1
        out, err = proc.communicate(timeout=900)
        if proc.returncode == 0:
            lines = [x for x in out.splitlines() if x.strip() and x.strip() != "ready"]
            runs.last_counts = json.loads(lines[-1]) if lines else {}
            return runs
        runs.worker_failures += 1
        last = (err.strip().splitlines() or ["?"])[-1]
        print(f"worker exited {proc.returncode}: {last}", file=sys.stderr)
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not finish in {max_starts} starts")


# ---------------------------------------------------------------- ledgers


def _engine(url: str) -> Any:
    os.environ.setdefault("RELANCE_DATA_KEYS", TEST_DATA_KEYS)
    from campaigns.ledger.db import make_engine

    return make_engine(url)


def fresh_ledger(url: str) -> None:
    from campaigns.ledger.db import upgrade

    engine = _engine(url)
    upgrade(engine)
    engine.dispose()


def seed_channel(url: str, n: int, channel: str) -> list[str]:
    """A migrated ledger with N queued actions of `channel` ('mailbox' or 'email'); their keys."""
    sys.path.insert(0, str(ROOT))
    from bench.channels.dispatch import seed
    from campaigns.definition.catalog import load_campaign

    fresh_ledger(url)
    engine = _engine(url)
    seed(engine, load_campaign(CAMPAIGN), n)
    with engine.begin() as c:
        if channel == "email":
            # The mailbox step's notification e-mail, as dispatch writes it after a deposit.
            c.execute(
                text(
                    "UPDATE action SET step = 'mailbox_notice', channel = 'email',"
                    " key = REPLACE(key, ':mailbox:', ':mailbox_notice:')"
                )
            )
        keys = [k for (k,) in c.execute(text("SELECT key FROM action ORDER BY id"))]
    engine.dispose()
    return keys


def _ledger_actions(url: str) -> list[tuple[Any, ...]]:
    engine = _engine(url)
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT key, channel, step, state, provider_id, due_on, reason FROM action")
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


# ---------------------------------------------------------------- dispatch campaigns


def check_dispatch(
    *, url: str, keys: list[str], counts: Any, channel: str, exactly_once: bool
) -> dict[str, Any]:
    """Compare the provider's counts with the ledger; list every discrepancy."""
    problems: list[str] = []
    seeded = set(keys)
    effects: Counter[str] = counts.deposits
    lost = sorted(seeded - set(effects))
    stray = sorted(set(effects) - seeded)
    dups = {k: n for k, n in effects.items() if n > 1}
    if lost:
        problems.append(f"{len(lost)} keys never reached the provider, e.g. {lost[:3]}")
    if stray:
        problems.append(f"{len(stray)} unknown keys reached the provider, e.g. {stray[:3]}")
    if exactly_once and dups:
        problems.append(f"{len(dups)} keys took effect more than once, e.g. {list(dups)[:3]}")
    rows = [r for r in _ledger_actions(url) if r[1] == channel]
    states = Counter(r[3] for r in rows)
    if len(rows) != len(keys):
        problems.append(f"{len(rows)} {channel} actions in the ledger, {len(keys)} seeded")
    for key, _, _, state, provider_id, _, _ in rows:
        ids = counts.ids.get(key, [])
        if state != "sent":
            problems.append(f"{key} is {state!r} in the ledger")
        elif exactly_once and ids != [provider_id]:
            problems.append(f"{key}: ledger says {provider_id}, the provider gave {ids}")
        elif not exactly_once and provider_id not in ids:
            problems.append(f"{key}: ledger id {provider_id} is not one the provider gave {ids}")
        if len(problems) > 20:
            problems.append("…")
            break
    notices = Counter(r[0] for r in _ledger_actions(url) if r[2] == "mailbox_notice")
    if channel == "mailbox" and (len(notices) != len(keys) or any(n > 1 for n in notices.values())):
        problems.append(f"{len(notices)} notification e-mails planned for {len(keys)} deposits")
    return {
        "messages": len(keys),
        "provider_effects": counts.total_effects,
        "keys_with_effect": len(effects),
        "duplicates": sum(n - 1 for n in effects.values()),
        "keys_duplicated": len(dups),
        "replays_absorbed": sum(counts.replays.values()),
        "provider_requests": counts.requests,
        # Requests the provider refused: a worker killed while writing one leaves it truncated.
        "provider_refused": counts.refused,
        "ledger_states": dict(states),
        "problems": problems,
    }


def run_crash_campaign(
    n_messages: int,
    kills: int,
    db_url: str,
    *,
    upstream: str,
    channel: str = "mailbox",
    batch: int = 50,
    seed: int = 1,
    delay: tuple[float, float] = (0.2, 2.0),
    pg_restarts: int = 0,
    honour_key: bool = True,
    per_second: float | None = None,
) -> dict[str, Any]:
    """Seed N queued actions, SIGKILL the dispatcher `kills` times (and restart PostgreSQL
    `pg_restarts` times) while it sends them through the provider mock, then finish it."""
    from tests.crash.idempotent_mock import provider_mock

    keys = seed_channel(db_url, n_messages, channel)
    rng = random.Random(seed)
    kind = "mailbox" if channel == "mailbox" else "sendgrid"
    t0 = time.monotonic()
    with provider_mock(upstream, kind, honour_key=honour_key) as mock:
        args = ["dispatch", "--db", db_url, "--channel", channel, "--url", mock.url]
        args += ["--batch", str(batch), "--day", DAY.isoformat()]
        if per_second is not None:  # slow the provider down so that the kills land mid-run
            args += ["--per-second", str(per_second)]
        runs = Runs()
        for _ in range(pg_restarts):
            restart_postgres_under(args, rng=rng, delay=delay, runs=runs)
        run_with_kills(args, kills=kills, rng=rng, delay=delay, runs=runs)
        result = check_dispatch(
            url=db_url,
            keys=keys,
            counts=mock.counts,
            channel=channel,
            exactly_once=channel == "mailbox",
        )
    if channel != "mailbox" and result["duplicates"] > runs.kills * batch:
        result["problems"].append(
            f"{result['duplicates']} duplicates for {runs.kills} kills of batches of {batch}"
        )
    return {
        "channel": channel,
        "db": db_url.split(":", 1)[0],
        "batch": batch,
        "kills": runs.kills,
        "kills_after_finish": runs.kills_missed,
        "db_restarts": runs.db_restarts,
        "worker_starts": runs.worker_starts,
        "worker_failures": runs.worker_failures,
        "seconds": round(time.monotonic() - t0, 1),
        **result,
    }


# ---------------------------------------------------------------- PostgreSQL restart


def postgres_restart() -> None:
    """Restart the machine's PostgreSQL (fast shutdown) and wait until it accepts connections."""
    version = sorted(p.name for p in PG_CLUSTER_VERSION_DIR.iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 60
    while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("PostgreSQL did not come back in 60 s")
        time.sleep(0.2)


def restart_postgres_under(
    args: list[str], *, rng: random.Random, delay: tuple[float, float], runs: Runs
) -> None:
    """Start the worker, restart PostgreSQL under it; the worker dies or carries on."""
    proc = _start(args)
    runs.worker_starts += 1
    _wait_ready(proc)
    time.sleep(rng.uniform(*delay))
    alive = proc.poll() is None
    postgres_restart()
    runs.db_restarts += 1
    proc.communicate(timeout=900)
    if proc.returncode != 0:
        runs.worker_failures += 1
    if not alive:
        runs.kills_missed += 1


def fresh_pg_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as c:
        c.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        )
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


# ---------------------------------------------------------------- tick and enrolments


def admitted_ledger(path: Path, n: int, enrolled_every: int = 0) -> str:
    """A SQLite ledger with N admitted members whose renewals spread over 120 days (one in
    `enrolled_every` already enrolled, for the tick to close)."""
    sys.path.insert(0, str(ROOT))
    from bench.tick.run import population
    from campaigns.cascade.membership import admit_targets
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import session_scope
    from campaigns.ledger.registry import register_campaign

    url = f"sqlite:///{path}"
    fresh_ledger(url)
    engine = _engine(url)
    definition = load_campaign(CAMPAIGN).definition
    targets, people = population(n)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=definition, launched=True)
        admit_targets(
            session=s,
            definition=definition,
            targets=targets,
            people=people,
            today=DAY - timedelta(days=1),
        )
    if enrolled_every:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO enrolment (ben_nir_psa, ben_rng_gem, programme, enrolled_on,"
                    " channel, source) VALUES (:a, 1, :p, :on, 'online', 'seed')"
                ),
                [
                    {"a": f"B{i:09d}", "p": definition.goal.programme, "on": DAY - timedelta(2)}
                    for i in range(0, n, enrolled_every)
                ],
            )
    with engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return url


def copy_ledger(src: Path, dst: Path) -> str:
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"


def snapshot(url: str) -> dict[str, Any]:
    """What a run decided: actions, member statuses, member events, enrolments."""
    engine = _engine(url)
    with engine.connect() as c:
        actions = c.execute(
            text("SELECT key, state, due_on, reason FROM action ORDER BY key")
        ).all()
        members = c.execute(
            text("SELECT id, status, status_reason, status_on FROM member ORDER BY id")
        ).all()
        events = c.execute(text('SELECT member_id, "on", kind, detail FROM memberevent')).all()
        enrolments = c.execute(
            text(
                "SELECT ben_nir_psa, ben_rng_gem, programme, enrolled_on, channel, source"
                " FROM enrolment ORDER BY ben_nir_psa, ben_rng_gem, programme"
            )
        ).all()
    engine.dispose()

    def norm(detail: Any) -> str:
        value = json.loads(detail) if isinstance(detail, str) else detail
        return json.dumps(value, sort_keys=True, default=str)

    return {
        "actions": [tuple(map(str, r)) for r in actions],
        "members": [tuple(map(str, r)) for r in members],
        "events": sorted((str(m), str(on), k, norm(d)) for m, on, k, d in events),
        "enrolments": [tuple(map(str, r)) for r in enrolments],
    }


def compare(crashed: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    problems = []
    for part in ("actions", "members", "events", "enrolments"):
        a, b = Counter(crashed[part]), Counter(reference[part])
        if a != b:
            extra, missing = list((a - b).elements()), list((b - a).elements())
            problems.append(
                f"{part}: {len(extra)} rows only after the crashes (e.g. {extra[:2]}),"
                f" {len(missing)} only in the reference (e.g. {missing[:2]})"
            )
    return problems


def run_tick_campaign(
    n_members: int,
    kills: int,
    tmp: Path,
    *,
    seed: int = 2,
    batch: int = 200,
    delay: tuple[float, float] = (0.1, 1.0),
) -> dict[str, Any]:
    """The cascade tick killed `kills` times vs. an uninterrupted tick on a copy."""
    base = tmp / "tick-crashed.db"
    url = admitted_ledger(base, n_members, enrolled_every=7)
    ref = copy_ledger(base, tmp / "tick-reference.db")
    args = ["tick", "--batch", str(batch), "--day", DAY.isoformat()]
    t0 = time.monotonic()
    reference = finish([*args, "--db", ref], runs=Runs())
    ref_s = time.monotonic() - t0
    runs = run_with_kills([*args, "--db", url], kills=kills, rng=random.Random(seed), delay=delay)
    crashed, expected = snapshot(url), snapshot(ref)
    return {
        "members": n_members,
        "batch": batch,
        "kills": runs.kills,
        "kills_after_finish": runs.kills_missed,
        "worker_starts": runs.worker_starts,
        "reference_seconds": round(ref_s, 1),
        "actions": len(expected["actions"]),
        "members_left": sum(1 for m in expected["members"] if m[1] != "active"),
        "events": len(expected["events"]),
        "reference_counts": reference.last_counts,
        "problems": compare(crashed, expected),
    }


def write_enrolment_files(folder: Path, n_rows: int, n_members: int, files: int) -> list[Path]:
    """`files` feed files, n_rows enrolments in all: members and strangers, some repeated."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    channels = ("online", "paper", "doctor", "phone")
    rows: list[tuple[str, int, str, str]] = []
    for i in range(n_rows):
        if i % 10 == 9 and rows:
            rows.append(rows[rng.randrange(len(rows))])  # the same person in another file
            continue
        person = rng.randrange(n_members * 2)  # half of them are not members
        on = DAY - timedelta(days=rng.randrange(60))
        rows.append((f"B{person:09d}", 1, on.isoformat(), channels[i % 4]))
    paths = []
    per = -(-n_rows // files)
    for k in range(files):
        p = folder / f"adhesions-{k:02d}.csv"
        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["ben_nir_psa", "ben_rng_gem", "date_adhesion", "canal"])
            w.writerows(rows[k * per : (k + 1) * per])
        paths.append(p)
    return paths


def run_enrolment_campaign(
    n_rows: int,
    n_members: int,
    kills: int,
    tmp: Path,
    *,
    seed: int = 3,
    files: int = 10,
    delay: tuple[float, float] = (0.1, 1.0),
) -> dict[str, Any]:
    """Enrolment ingestion killed `kills` times vs. an uninterrupted one on a copy."""
    base = tmp / "enrol-crashed.db"
    url = admitted_ledger(base, n_members)
    ref = copy_ledger(base, tmp / "enrol-reference.db")
    paths = []
    for p in write_enrolment_files(tmp / "feed", n_rows, n_members, files):
        paths += ["--file", str(p)]
    args = ["enrol", "--day", DAY.isoformat()]
    t0 = time.monotonic()
    reference = finish([*args, "--db", ref, *paths], runs=Runs())
    ref_s = time.monotonic() - t0
    runs = run_with_kills(
        [*args, "--db", url, *paths], kills=kills, rng=random.Random(seed), delay=delay
    )
    crashed, expected = snapshot(url), snapshot(ref)
    problems = compare(crashed, expected)
    left = Counter(e[0] for e in crashed["events"] if e[2] == "left")
    if any(n > 1 for n in left.values()):
        problems.append(f"{sum(n > 1 for n in left.values())} members closed more than once")
    return {
        "rows": n_rows,
        "files": files,
        "members": n_members,
        "kills": runs.kills,
        "kills_after_finish": runs.kills_missed,
        "worker_starts": runs.worker_starts,
        "reference_seconds": round(ref_s, 1),
        "enrolments": len(expected["enrolments"]),
        "members_closed": sum(1 for m in expected["members"] if m[2] == "enrolled"),
        "reference_counts": {k: v for k, v in reference.last_counts.items() if k != "errors"},
        "problems": problems,
    }
