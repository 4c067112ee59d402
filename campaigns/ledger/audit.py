"""The audit log: append-only, in lanes each numbered without gaps, each event keyed and
chained to the last of its lane.

A writer takes one lane's head row in `audit_head` first (an UPDATE: the write lock on SQLite,
the row lock on PostgreSQL, held to commit), so a lane's events are appended one at a time and
its chain cannot fork. On PostgreSQL the writer takes the first head no other transaction
holds: writers at the same moment chain side by side instead of each waiting for the one
before to commit. Each event's hash is an HMAC-SHA256 under a key kept outside the database;
signed checkpoints (lane, sequence number, hash) are appended to a file outside the database,
so deleting the last events or rewriting a chain without the key is caught by `check`
(docs/security.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, event, func, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from campaigns.clock import utcnow
from campaigns.ledger.models import AuditEvent, AuditHead
from campaigns.settings import Settings, get_settings

GENESIS = "0" * 64
# Unkeyed SHA-256 (events written before migration 0008); HMAC-SHA256 (before 0017); the same
# with the event's lane signed too.
LEGACY, KEYED, LANED = 1, 2, 3
LANES = 8  # the head rows migration 0017 creates
KEY_FILE = "audit_key"
CHECKPOINTS_FILE = "audit_checkpoints.jsonl"
log = logging.getLogger(__name__)


def _digest(prev: str, at: datetime, actor: str, action: str, target: str, detail: Any) -> str:
    body = json.dumps(
        [prev, at.isoformat(), actor, action, target, detail], sort_keys=True, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _utc(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _mac(key: bytes, seq: int, prev: str, at: datetime, actor: str, action: str, target: str,
         detail: Any) -> str:  # fmt: skip
    body = json.dumps(
        [KEYED, seq, prev, _utc(at), actor, action, target, detail], sort_keys=True, default=str
    )
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _laned_mac(key: bytes, lane: int, seq: int, prev: str, at: datetime, actor: str,
               action: str, target: str, detail: Any) -> str:  # fmt: skip
    body = json.dumps(
        [LANED, lane, seq, prev, _utc(at), actor, action, target, detail],
        sort_keys=True,
        default=str,
    )
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _checkpoint_mac(key: bytes, seq: int, last_hash: str, at: str, lane: int | None) -> str:
    # A line without a lane (written before 0017) attests lane 1, signed without it.
    what = f"{seq}|{last_hash}|{at}" if lane is None else f"lane {lane}|{seq}|{last_hash}|{at}"
    return hmac.new(key, f"checkpoint|{what}".encode(), hashlib.sha256).hexdigest()


_key_cache: tuple[Any, bytes] | None = None  # (the settings object it came from, the key)


def audit_key() -> bytes:
    """RELANCE_AUDIT_KEY, else a random key kept (0600) in data_dir/audit_key; read once per
    settings object (every audited request needs it)."""
    global _key_cache
    settings = get_settings()
    cached = _key_cache
    if cached is not None and cached[0] is settings:
        return cached[1]
    key = _read_key(settings)
    _key_cache = (settings, key)
    return key


def _read_key(settings: Settings) -> bytes:
    if settings.audit_key:
        return settings.audit_key.encode()
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once keep one key, the first one's.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex())
    return path.read_text().strip().encode()


def checkpoints_path() -> Path:
    """The signed checkpoints file, beside the key in data_dir."""
    return Path(get_settings().data_dir) / CHECKPOINTS_FILE


_HEADS: Any = AuditHead.__table__  # type: ignore[attr-defined]
_EVENTS: Any = AuditEvent.__table__  # type: ignore[attr-defined]
_NUMBERED = (_HEADS.c.id, _HEADS.c.seq, _HEADS.c.hash)
# Statements built once: an audited request pays for its round trips, not for building SQL.
_BUMP = (
    update(_HEADS)
    .where(_HEADS.c.id == bindparam("lane"))
    .values(seq=_HEADS.c.seq + 1)
    .returning(*_NUMBERED)
)
# PostgreSQL: the first head no other transaction holds, taken and numbered in one statement.
_BUMP_FREE = (
    update(_HEADS)
    .where(
        _HEADS.c.id
        == select(_HEADS.c.id)
        .order_by(_HEADS.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(seq=_HEADS.c.seq + 1)
    .returning(*_NUMBERED)
)
_APPEND = insert(_EVENTS)
_SET_HASH = update(_HEADS).where(_HEADS.c.id == bindparam("lane")).values(hash=bindparam("h"))


def _restore_head(session: Session, lane: int) -> None:
    """A lane's head, if it has none (a database emptied by hand), from its last event."""
    last = session.exec(
        select(AuditEvent).where(col(AuditEvent.lane) == lane).order_by(col(AuditEvent.id).desc())
    ).first()
    ins = (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert
    session.execute(
        ins(AuditHead)
        .values(id=lane, seq=(last.seq or 0) if last else 0, hash=last.hash if last else GENESIS)
        .on_conflict_do_nothing(index_elements=["id"])
    )


def _take_head(session: Session) -> tuple[int, int, str]:
    """The lane, its next sequence number and the hash to chain to, held until commit.

    The lane is the one this transaction already holds; else, on PostgreSQL, the first head no
    other transaction holds, or (all 8 held) one at random, waited for while holding none, so
    no two writers wait for each other. SQLite has one writer at a time: lane 1. In quiet
    hours PostgreSQL's events go to lane 1 too; the other lanes take those written while it is
    held.
    """
    held = session.info.get("audit_lane")
    row = None
    if held is not None:
        lane = int(held)
    elif session.get_bind().dialect.name != "postgresql":
        lane = 1
    else:
        row = session.execute(_BUMP_FREE).first()
        heads = _HEADS.c.id
        if row is None and session.execute(select(func.count(heads))).scalar_one() < LANES:
            for missing in range(1, LANES + 1):
                _restore_head(session, missing)
            row = session.execute(_BUMP_FREE).first()
        lane = int(row[0]) if row is not None else random.randint(1, LANES)
    if row is None:
        row = session.execute(_BUMP, {"lane": lane}).first()
    if row is None:
        _restore_head(session, lane)
        row = session.execute(_BUMP, {"lane": lane}).one()
    session.info["audit_lane"] = lane
    return lane, int(row[1]), str(row[2])


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Append one event (who did or saw what) to a lane's chain."""
    now = now or utcnow()
    detail = detail or {}
    lane, seq, prev = _take_head(session)
    digest = _laned_mac(audit_key(), lane, seq, prev, now, actor, action, target, detail)
    session.execute(
        _APPEND,
        {
            "lane": lane,
            "seq": seq,
            "scheme": LANED,
            "at": now,
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
            "prev_hash": prev,
            "hash": digest,
        },
    )
    session.execute(_SET_HASH, {"lane": lane, "h": digest})
    every = get_settings().audit_checkpoint_every
    if every > 0 and (seq == 1 or seq % every == 0):
        # Written once the event is committed: a rolled-back event must not be attested.
        session.info["audit_checkpoint"] = (lane, seq, digest)


@event.listens_for(OrmSession, "after_commit")
def _checkpoint_after_commit(session: OrmSession) -> None:
    session.info.pop("audit_lane", None)  # the head is released with the transaction
    due = session.info.pop("audit_checkpoint", None)
    if due is None:
        return
    try:
        write_checkpoint(lane=due[0], seq=due[1], last_hash=due[2])
    except OSError as e:
        # The event is committed: failing the request now would not undo it. The next
        # checkpoint (or `relance audit checkpoint`) covers it; the operator is told.
        log.warning("point de contrôle d'audit non écrit (n°%s) : %s", due[1], e.strerror)


@event.listens_for(OrmSession, "after_rollback")
def _no_checkpoint_after_rollback(session: OrmSession) -> None:
    session.info.pop("audit_lane", None)
    session.info.pop("audit_checkpoint", None)


def write_checkpoint(
    *, lane: int = 1, seq: int, last_hash: str, path: Path | None = None
) -> dict[str, Any]:
    """Append a signed checkpoint (lane, seq, last hash, time) to the checkpoints file (0600)."""
    path = path or checkpoints_path()
    at = utcnow().isoformat()
    line: dict[str, Any] = {"lane": lane, "seq": seq, "hash": last_hash, "at": at}
    line["mac"] = _checkpoint_mac(audit_key(), seq, last_hash, at, lane)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # whole lines, even from several processes
        f.write(json.dumps(line, sort_keys=True) + "\n")
    return line


def checkpoint(*, session: Session) -> list[dict[str, Any]]:
    """Attest each lane's last committed event now (`relance audit checkpoint`); [] if none."""
    lanes = session.execute(
        select(AuditEvent.lane, AuditEvent.seq, AuditEvent.hash)
        .where(
            col(AuditEvent.id).in_(
                select(func.max(AuditEvent.id)).group_by(col(AuditEvent.lane)).scalar_subquery()
            )
        )
        .order_by(col(AuditEvent.lane))
    ).all()
    return [write_checkpoint(lane=lane, seq=seq or 0, last_hash=h) for lane, seq, h in lanes]


@dataclass(frozen=True)
class Verdict:
    """What `check` found: the events read and, if any, the first one that disagrees."""

    events: int
    checkpoints: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str | None = None
    broken_lane: int = 1

    @property
    def ok(self) -> bool:
        """True when the chains, the keys, the sequences and the checkpoints all agree."""
        return self.reason is None

    @property
    def where(self) -> str:
        """The event that disagrees, named in French (`event_name`), or « journal »."""
        if self.broken_seq is None:
            return "journal"
        return event_name(self.broken_lane, self.broken_seq)


def event_name(lane: int, seq: int) -> str:
    """An event named in French: « événement n°5 » in lane 1, « voie 3, événement n°5 »."""
    return f"événement n°{seq}" if lane == 1 else f"voie {lane}, événement n°{seq}"


def _read_checkpoints(path: Path, key: bytes) -> tuple[list[dict[str, Any]], str | None]:
    if not path.exists():
        return [], None
    out: list[dict[str, Any]] = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        try:
            cp = json.loads(raw)
            lane = int(cp["lane"]) if "lane" in cp else None
            want = _checkpoint_mac(key, int(cp["seq"]), str(cp["hash"]), cp["at"], lane)
            good = hmac.compare_digest(str(cp["mac"]), want)
        except (ValueError, KeyError, TypeError):
            return out, f"ligne {n} du fichier des points de contrôle illisible"
        if not good:
            return out, (
                f"ligne {n} du fichier des points de contrôle : signature invalide "
                "(point de contrôle modifié, ou clé d'audit différente)"
            )
        out.append({**cp, "lane": lane or 1})
    return out, None


def _fault(ev: AuditEvent, n: int, prev: str, keyed: bool, key: bytes) -> str | None:
    """Why the n-th event of its lane does not belong where it is, or None."""
    if ev.seq != n:
        return f"numéro {ev.seq} où {n} était attendu (événement supprimé ou inséré)"
    if ev.prev_hash != prev:
        return "ne suit pas l'événement précédent (chaîne rompue)"
    if ev.scheme == LANED:
        want = _laned_mac(key, ev.lane, n, prev, ev.at, ev.actor, ev.action, ev.target, ev.detail)
    elif ev.scheme == KEYED and ev.lane == 1:
        want = _mac(key, n, prev, ev.at, ev.actor, ev.action, ev.target, ev.detail)
    elif ev.scheme == LEGACY and ev.lane == 1 and not keyed:
        if ev.hash != _digest(prev, ev.at, ev.actor, ev.action, ev.target, ev.detail):
            return "empreinte invalide (événement modifié)"
        return None
    else:
        return f"schéma {ev.scheme} inattendu à cette place (événement réécrit)"
    if not hmac.compare_digest(ev.hash, want):
        return "signature HMAC invalide (événement modifié, ou clé d'audit différente)"
    return None


@dataclass
class _Lane:
    """One lane as `check` walks it: events counted, the last hash, each number's event."""

    n: int = 0
    prev: str = GENESIS
    keyed: bool = False
    by_seq: dict[int, tuple[int, str]] = field(default_factory=dict)


def check(
    *, session: Session, key: bytes | None = None, checkpoints: Path | None = None
) -> Verdict:
    """Verify each lane's sequence, chain and HMACs, then the checkpoints and the heads; stop
    at the first event that disagrees."""
    key = key if key is not None else audit_key()
    cps, bad_file = _read_checkpoints(checkpoints or checkpoints_path(), key)
    lanes: dict[int, _Lane] = defaultdict(_Lane)
    total = 0
    order = (col(AuditEvent.lane), col(AuditEvent.id))
    for ev in session.exec(select(AuditEvent).order_by(*order)):
        lane = lanes[ev.lane]
        lane.n += 1
        why = _fault(ev, lane.n, lane.prev, lane.keyed, key)
        if why is not None:
            return Verdict(total, len(cps), ev.seq, ev.id, why, ev.lane)
        total += 1
        lane.keyed = lane.keyed or ev.scheme != LEGACY
        lane.by_seq[lane.n] = (ev.id or 0, ev.hash)
        lane.prev = ev.hash
    if bad_file:
        return Verdict(total, len(cps), None, None, bad_file)
    last_good: dict[int, int] = defaultdict(int)
    for cp in sorted(cps, key=lambda c: (int(c["lane"]), int(c["seq"]))):
        seq, lane_no = int(cp["seq"]), int(cp["lane"])
        lane = lanes[lane_no]
        if seq not in lane.by_seq:
            return Verdict(
                total,
                len(cps),
                lane.n + 1,
                None,
                f"événement n°{lane.n + 1} manquant : le point de contrôle signé du {cp['at']} "
                f"atteste {seq} événements, le journal s'arrête au n°{lane.n} (fin supprimée)",
                lane_no,
            )
        if lane.by_seq[seq][1] != cp["hash"]:
            return Verdict(
                total,
                len(cps),
                seq,
                lane.by_seq[seq][0],
                f"ne correspond pas au point de contrôle signé du {cp['at']} : le journal a "
                f"été réécrit entre le n°{last_good[lane_no] + 1} et le n°{seq}",
                lane_no,
            )
        last_good[lane_no] = seq
    # Read from the database, not the session's identity map (writers update it in SQL).
    heads = session.execute(
        select(AuditHead.id, AuditHead.seq, AuditHead.hash).order_by(col(AuditHead.id))
    ).all()
    for lane_no, seq, head_hash in heads:
        lane = lanes[lane_no]
        why = _head_fault(int(seq), str(head_hash), lane.n, lane.prev)
        if why is not None:
            return Verdict(total, len(cps), lane.n + 1, None, why, lane_no)
    return Verdict(total, len(cps))


def _head_fault(seq: int, head_hash: str, n: int, last_hash: str) -> str | None:
    """Why a lane's head (written in the same transaction as each of its events) disagrees
    with the lane's last event on record, or None: it catches a tail deleted after the last
    checkpoint."""
    if seq > n:
        gone = seq - n
        return (
            f"événement n°{n + 1} manquant : la tête du journal compte {seq} événements, "
            f"le journal s'arrête au n°{n} ({gone} événement(s) de fin supprimé(s) après le "
            "dernier point de contrôle : fin supprimée)"
        )
    if seq != n or head_hash != last_hash:
        return (
            f"la tête du journal (n°{seq}) ne correspond pas au dernier événement "
            f"(n°{n}) : journal ou tête réécrits"
        )
    return None


def verify(*, session: Session) -> tuple[int, int | None]:
    """(events checked, id of the first broken event, 0 if it is missing, or None if intact)."""
    v = check(session=session)
    if v.ok:
        return v.events, None
    return v.events + 1, v.broken_id or 0
