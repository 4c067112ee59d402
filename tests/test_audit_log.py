"""The audit log proves itself: no fork under concurrent writers, a gapless sequence, keyed
events, and signed checkpoints outside the database that catch a truncated or rewritten log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from campaigns.ledger.audit import GENESIS, LEGACY, check, checkpoint, record
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import AuditEvent, AuditHead
from campaigns.settings import get_settings
from console.cli import app
from tests.test_encryption import _migrate, empty_url  # noqa: F401 (a fixture)
from tests.test_why_audit import _guards


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data_dir of the test's own, with a checkpoint every 10 events."""
    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELANCE_AUDIT_CHECKPOINT_EVERY", "10")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def write(engine: Engine, n: int, lane: int | None = None) -> None:
    """`n` events, each in its own transaction; in `lane` as if the ones before were held."""
    for i in range(n):
        with session_scope(engine) as s:
            if lane is not None:
                s.info["audit_lane"] = lane
            record(session=s, actor="adv", action="view_person", target=f"member/{i}")


def events(engine: Engine) -> list[AuditEvent]:
    with session_scope(engine) as s:
        return list(s.exec(select(AuditEvent).order_by(col(AuditEvent.id))))


def verdict(engine: Engine, **kw: Any) -> Any:
    with session_scope(engine) as s:
        return check(session=s, **kw)


def test_concurrent_writers_never_fork_the_chain(engine: Engine, data_dir: Path) -> None:
    barrier = threading.Barrier(200)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        barrier.wait()
        try:
            with session_scope(engine) as s:
                record(session=s, actor=f"adv-{i}", action="view_person", target=f"member/{i}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    evs = events(engine)
    forks = sum(n - 1 for n in Counter((e.lane, e.prev_hash) for e in evs).values())
    assert (len(evs), forks) == (200, 0)
    lanes = Counter(e.lane for e in evs)
    for lane, n in lanes.items():
        assert [e.seq for e in evs if e.lane == lane] == list(range(1, n + 1))
    # SQLite has one writer at a time; PostgreSQL's writers chain side by side.
    assert set(lanes) == {1} if engine.dialect.name == "sqlite" else len(lanes) > 1, lanes
    v = verdict(engine)
    assert v.ok and v.events == 200
    # Checkpoints after each lane's first event and every 10th, once the event was committed.
    assert v.checkpoints == sum(1 + n // 10 for n in lanes.values())


def test_deleting_the_last_events_is_caught_by_the_checkpoint(
    engine: Engine, data_dir: Path
) -> None:
    write(engine, 23)
    with session_scope(engine) as s:
        assert checkpoint(session=s) != []  # `relance audit checkpoint` at 23
    with session_scope(engine) as s:
        _drop_delete_guard(s, engine, drop=True)
        s.execute(delete(AuditEvent).where(col(AuditEvent.seq) > 20))
        s.execute(update(AuditHead).values(seq=20, hash=events(engine)[19].hash))
    v = verdict(engine)
    assert not v.ok and v.broken_seq == 21
    assert "fin supprimée" in (v.reason or "") and "23 événements" in (v.reason or "")


def test_relance_audit_verify_fails_in_french_on_a_truncated_tail(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`relance audit verify` compares the log with the last signed checkpoint: exit 1."""
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    write(engine, 12)  # checkpoints at 1 and 10
    ok = CliRunner().invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "12 événements" in ok.output
    with session_scope(engine) as s:
        _drop_delete_guard(s, engine, drop=True)
        s.execute(delete(AuditEvent).where(col(AuditEvent.seq) > 8))
        s.execute(update(AuditHead).values(seq=8, hash=events(engine)[7].hash))
    bad = CliRunner().invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1
    said = " ".join(bad.output.split())
    assert "journal d'audit altéré" in said and "fin supprimée" in said, said
    assert "10 événements" in said


def test_deleting_the_tail_after_the_last_checkpoint_is_caught_by_the_head(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last 3 events go after the checkpoint at 10: the head still counts 13, and
    `relance audit verify` says so in French (exit 1)."""
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    write(engine, 13)  # checkpoints at 1 and 10
    assert verdict(engine).ok
    with session_scope(engine) as s:
        _drop_delete_guard(s, engine, drop=True)
        s.execute(delete(AuditEvent).where(col(AuditEvent.seq) > 10))
    v = verdict(engine)
    assert not v.ok and v.broken_seq == 11 and v.events == 10
    assert "13 événements" in (v.reason or "") and "fin supprimée" in (v.reason or "")
    bad = CliRunner().invoke(app, ["audit", "verify"])
    said = " ".join(bad.output.split())
    assert bad.exit_code == 1 and "journal d'audit altéré" in said, said
    assert "événement n°11 manquant" in said and "3 événement(s) de fin supprimé(s)" in said


def test_a_head_rewritten_out_of_step_with_the_log_is_caught(
    engine: Engine, data_dir: Path
) -> None:
    write(engine, 4)
    with session_scope(engine) as s:
        s.execute(update(AuditHead).values(hash=events(engine)[1].hash))
    v = verdict(engine)
    assert not v.ok and "tête du journal (n°4)" in (v.reason or "")


def _plain_recompute(engine: Engine, *, relabel: bool) -> None:
    """Edit event 5 and recompute the chain as the project's old code did, without the key:
    from event 5 on, or (relabelled as events from before the key) from the first one."""
    evs = events(engine)
    start = 0 if relabel else 4
    prev = evs[start - 1].hash if start else GENESIS
    with session_scope(engine) as s:
        _guards(s, engine, drop=True)
        for ev in evs[start:]:
            target = "member/999" if ev.seq == 5 else ev.target
            body = json.dumps(
                [prev, ev.at.isoformat(), ev.actor, ev.action, target, ev.detail],
                sort_keys=True,
                default=str,
            )
            h = hashlib.sha256(body.encode()).hexdigest()
            s.execute(
                update(AuditEvent)
                .where(col(AuditEvent.id) == ev.id)
                .values(target=target, prev_hash=prev, hash=h)
            )
            prev = h
        if relabel:
            s.execute(update(AuditEvent).values(scheme=LEGACY))
        _guards(s, engine, drop=False)


def test_a_chain_recomputed_without_the_key_is_caught(engine: Engine, data_dir: Path) -> None:
    write(engine, 8)
    _plain_recompute(engine, relabel=False)
    v = verdict(engine)
    assert not v.ok and v.broken_seq == 5 and "HMAC" in (v.reason or "")


def test_a_chain_rewritten_as_pre_key_events_is_caught_by_the_checkpoints(
    engine: Engine, data_dir: Path
) -> None:
    write(engine, 12)  # checkpoints at 1 and 10
    _plain_recompute(engine, relabel=True)
    v = verdict(engine)
    assert not v.ok and v.broken_seq == 1
    assert "ne correspond pas au point de contrôle" in (v.reason or "")


def test_a_wrong_key_is_caught(engine: Engine, data_dir: Path) -> None:
    write(engine, 3)
    assert verdict(engine).ok
    v = verdict(engine, key=b"not the key")
    assert not v.ok and v.broken_seq == 1 and "clé d'audit différente" in (v.reason or "")


def test_a_checkpoint_forged_without_the_key_is_caught(engine: Engine, data_dir: Path) -> None:
    write(engine, 3)
    last = events(engine)[-1]
    forged = {"seq": 3, "hash": last.hash, "at": "2026-12-02T10:00:00+00:00", "mac": "0" * 64}
    with (data_dir / "audit_checkpoints.jsonl").open("a") as f:
        f.write(json.dumps(forged) + "\n")
    v = verdict(engine)
    assert not v.ok and "ligne 2" in (v.reason or "") and "signature invalide" in (v.reason or "")


def test_events_from_before_the_key_keep_verifying(engine: Engine, data_dir: Path) -> None:
    """Events written before migration 0008 (scheme 1, plain SHA-256) then keyed ones."""
    from campaigns.clock import utcnow
    from campaigns.ledger.audit import _digest

    prev = GENESIS
    with session_scope(engine) as s:
        for i in range(1, 4):
            at = utcnow()
            h = _digest(prev, at, "old", "login", "console", {})
            s.add(AuditEvent(seq=i, scheme=LEGACY, at=at, actor="old", action="login",
                             target="console", detail={}, prev_hash=prev, hash=h))  # fmt: skip
            prev = h
        s.merge(AuditHead(id=1, seq=3, hash=prev))
    write(engine, 2)
    assert [(e.seq, e.scheme) for e in events(engine)] == [(1, 1), (2, 1), (3, 1), (4, 3), (5, 3)]
    assert verdict(engine).ok


def test_cli_verify_names_the_first_event_that_disagrees(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{data_dir / 'r.db'}")
    get_settings.cache_clear()
    engine = get_engine()
    write(engine, 4)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact : 4 événements" in ok.output
    made = runner.invoke(app, ["audit", "checkpoint"])
    assert made.exit_code == 0 and "n°4" in made.output
    with session_scope(engine) as s:
        _guards(s, engine, drop=True)
        s.execute(update(AuditEvent).where(col(AuditEvent.seq) == 3).values(actor="someone"))
    bad = runner.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "événement n°3" in bad.output and "signature HMAC invalide" in bad.output
    assert "Traceback" not in bad.output


def _drop_delete_guard(s: Any, engine: Engine, *, drop: bool) -> None:
    if engine.dialect.name == "postgresql":
        verb = "DISABLE" if drop else "ENABLE"
        s.execute(text(f"ALTER TABLE auditevent {verb} TRIGGER auditevent_append_only"))
    elif drop:
        s.execute(text("DROP TRIGGER auditevent_no_delete"))


def test_a_rolled_back_event_is_never_attested(engine: Engine, data_dir: Path) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        record(session=s, actor="adv", action="view_person", target="member/1")
        raise RuntimeError("the request failed after the audit record")
    assert not (data_dir / "audit_checkpoints.jsonl").exists()
    write(engine, 1)  # number 1 again, now committed, and attested
    lines = (data_dir / "audit_checkpoints.jsonl").read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1]
    assert verdict(engine).ok


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_writer_takes_the_first_lane_no_one_holds(engine: Engine, data_dir: Path) -> None:
    """PostgreSQL: while a transaction holds lane 1 to its commit, another writer appends to
    lane 2 at once instead of waiting; the next one, lane 1 free again, goes back to it."""
    write(engine, 2)
    with session_scope(engine) as holder:
        record(session=holder, actor="adv-1", action="view_person", target="member/1")
        done = threading.Event()

        def other() -> None:
            with session_scope(engine) as s:
                record(session=s, actor="adv-2", action="view_person", target="member/2")
            done.set()

        t = threading.Thread(target=other)
        t.start()
        assert done.wait(10), "the second writer waited for the first one's commit"
        t.join()
    write(engine, 1)
    assert [(e.actor, e.lane, e.seq) for e in events(engine)] == [
        ("adv", 1, 1),
        ("adv", 1, 2),
        ("adv-1", 1, 3),
        ("adv-2", 2, 1),
        ("adv", 1, 4),
    ]
    assert verdict(engine).ok


def test_a_truncated_lane_is_caught_and_named(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lane 3's last events deleted and its head rewound: its checkpoint catches it, and
    `relance audit verify` names the lane."""
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    write(engine, 4)
    write(engine, 13, lane=3)  # lane 3: checkpoints at 1 and 10
    with session_scope(engine) as s:
        lines = checkpoint(session=s)  # `relance audit checkpoint`: lanes 1 and 3
    assert [(x["lane"], x["seq"]) for x in lines] == [(1, 4), (3, 13)]
    v = verdict(engine)
    assert v.ok and v.events == 17 and v.checkpoints == 5
    made = CliRunner().invoke(app, ["audit", "checkpoint"])
    said = " ".join(made.output.split())
    assert made.exit_code == 0 and "événement n°4 ; voie 3, événement n°13" in said, said
    lane3 = [e for e in events(engine) if e.lane == 3]
    with session_scope(engine) as s:
        _drop_delete_guard(s, engine, drop=True)
        s.execute(delete(AuditEvent).where(col(AuditEvent.lane) == 3, col(AuditEvent.seq) > 11))
        s.execute(
            update(AuditHead).where(col(AuditHead.id) == 3).values(seq=11, hash=lane3[10].hash)
        )
    v = verdict(engine)
    assert not v.ok and (v.broken_lane, v.broken_seq) == (3, 12)
    assert "fin supprimée" in (v.reason or "") and "13 événements" in (v.reason or "")
    bad = CliRunner().invoke(app, ["audit", "verify"])
    said = " ".join(bad.output.split())
    assert bad.exit_code == 1 and "voie 3, événement n°12" in said, said


def test_an_event_or_a_checkpoint_moved_to_another_lane_is_caught(
    engine: Engine, data_dir: Path
) -> None:
    """The lane is signed: an event relabelled into another lane, or a checkpoint line
    relabelled, fails its HMAC."""
    write(engine, 2, lane=2)
    cps = data_dir / "audit_checkpoints.jsonl"
    first = json.loads(cps.read_text().splitlines()[0])
    assert (first["lane"], first["seq"]) == (2, 1)
    cps.write_text(json.dumps({**first, "lane": 5}) + "\n")
    v = verdict(engine)
    assert not v.ok and "ligne 1" in (v.reason or "") and "signature invalide" in (v.reason or "")
    cps.unlink()
    with session_scope(engine) as s:
        _guards(s, engine, drop=True)
        s.execute(update(AuditEvent).values(lane=4))
        s.execute(update(AuditHead).where(col(AuditHead.id) == 2).values(seq=0, hash=GENESIS))
        s.merge(AuditHead(id=4, seq=2, hash=events(engine)[-1].hash))
        _guards(s, engine, drop=False)
    v = verdict(engine)
    assert not v.ok and (v.broken_lane, v.broken_seq) == (4, 1) and "HMAC" in (v.reason or "")


def test_checkpoints_written_before_lanes_keep_verifying(engine: Engine, data_dir: Path) -> None:
    """A line without a lane (written before migration 0017) attests lane 1, as signed then."""
    from campaigns.ledger.audit import _checkpoint_mac, audit_key

    write(engine, 3)
    last = events(engine)[-1]
    at = "2026-12-02T10:00:00+00:00"
    mac = hmac.new(
        audit_key(), f"checkpoint|3|{last.hash}|{at}".encode(), hashlib.sha256
    ).hexdigest()
    assert mac == _checkpoint_mac(audit_key(), 3, last.hash, at, None)
    with (data_dir / "audit_checkpoints.jsonl").open("a") as f:
        f.write(json.dumps({"seq": 3, "hash": last.hash, "at": at, "mac": mac}) + "\n")
    assert verdict(engine).ok
    with (data_dir / "audit_checkpoints.jsonl").open("a") as f:
        f.write(json.dumps({"seq": 4, "hash": last.hash, "at": at, "mac": mac}) + "\n")
    assert not verdict(engine).ok


def test_migration_0017_keeps_a_keyed_log_verifying(empty_url: str, data_dir: Path) -> None:  # noqa: F811
    """A log written before lanes (scheme 2, one head) is lane 1 after the migration, verifies,
    and goes on in lane 1 with the lane signed; the downgrade takes it back to one chain."""
    from campaigns.clock import utcnow
    from campaigns.ledger.audit import KEYED, LANED, _mac, audit_key
    from campaigns.ledger.db import make_engine

    engine = make_engine(empty_url)
    try:
        _migrate(engine, "0016_member_ref")
        prev = GENESIS
        with engine.begin() as c:
            for seq in (1, 2):
                at = utcnow()
                h = _mac(audit_key(), seq, prev, at, "old", "login", "console", {})
                c.execute(
                    text(
                        "INSERT INTO auditevent (seq, scheme, at, actor, action, target, detail,"
                        " prev_hash, hash) VALUES (:seq, 2, :at, 'old', 'login', 'console', '{}',"
                        " :prev, :h)"
                    ),
                    {"seq": seq, "at": at, "prev": prev, "h": h},
                )
                prev = h
            c.execute(text("UPDATE audit_head SET seq = 2, hash = :h WHERE id = 1"), {"h": prev})
        _migrate(engine, "head")
        assert verdict(engine).ok
        write(engine, 1)
        assert [(e.lane, e.seq, e.scheme) for e in events(engine)] == [
            (1, 1, KEYED),
            (1, 2, KEYED),
            (1, 3, LANED),
        ]
        with session_scope(engine) as s:
            assert len(s.exec(select(AuditHead)).all()) == 8
        assert verdict(engine).ok
        _migrate(engine, "0016_member_ref", down=True)
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM audit_head")).scalar_one() == 1
    finally:
        engine.dispose()
