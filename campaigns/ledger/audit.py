"""The audit log: append-only, numbered without gaps, each event keyed and chained to the last.

Writers take the one-row `audit_head` first (an UPDATE: the write lock on SQLite, the row
lock on PostgreSQL), so events are appended one at a time and the chain cannot fork. Each
event's hash is an HMAC-SHA256 under a key kept outside the database; signed checkpoints
(sequence number, hash) are appended to a file outside the database, so deleting the last
events or rewriting the chain without the key is caught by `check` (docs/security.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from campaigns.clock import utcnow
from campaigns.ledger.models import AuditEvent, AuditHead
from campaigns.settings import Settings, get_settings

GENESIS = "0" * 64
LEGACY, KEYED = 1, 2  # unkeyed SHA-256 (events written before migration 0008), HMAC-SHA256
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


def _checkpoint_mac(key: bytes, seq: int, last_hash: str, at: str) -> str:
    return hmac.new(key, f"checkpoint|{seq}|{last_hash}|{at}".encode(), hashlib.sha256).hexdigest()


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


def _take_head(session: Session) -> tuple[int, str]:
    """The next sequence number and the hash to chain to, holding the head until commit."""
    bump = (
        update(AuditHead)
        .where(col(AuditHead.id) == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(col(AuditHead.seq), col(AuditHead.hash))
    )
    row = session.execute(bump).first()
    if row is None:
        # No head (a database emptied by hand): start it from the last event on record.
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
        ins = (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert
        session.execute(
            ins(AuditHead)
            .values(id=1, seq=(last.seq or 0) if last else 0, hash=last.hash if last else GENESIS)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = session.execute(bump).one()
    return int(row[0]), str(row[1])


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event (who did or saw what) to the chain."""
    now = now or utcnow()
    detail = detail or {}
    seq, prev = _take_head(session)
    digest = _mac(audit_key(), seq, prev, now, actor, action, target, detail)
    ev = AuditEvent(
        seq=seq,
        scheme=KEYED,
        at=now,
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        prev_hash=prev,
        hash=digest,
    )
    session.add(ev)
    session.execute(update(AuditHead).where(col(AuditHead.id) == 1).values(hash=digest))
    session.flush()
    every = get_settings().audit_checkpoint_every
    if every > 0 and (seq == 1 or seq % every == 0):
        # Written once the event is committed: a rolled-back event must not be attested.
        session.info["audit_checkpoint"] = (seq, digest)
    return ev


@event.listens_for(OrmSession, "after_commit")
def _checkpoint_after_commit(session: OrmSession) -> None:
    due = session.info.pop("audit_checkpoint", None)
    if due is None:
        return
    try:
        write_checkpoint(seq=due[0], last_hash=due[1])
    except OSError as e:
        # The event is committed: failing the request now would not undo it. The next
        # checkpoint (or `relance audit checkpoint`) covers it; the operator is told.
        log.warning("point de contrôle d'audit non écrit (n°%s) : %s", due[0], e.strerror)


@event.listens_for(OrmSession, "after_rollback")
def _no_checkpoint_after_rollback(session: OrmSession) -> None:
    session.info.pop("audit_checkpoint", None)


def write_checkpoint(*, seq: int, last_hash: str, path: Path | None = None) -> dict[str, Any]:
    """Append a signed checkpoint (seq, last hash, time) to the checkpoints file (0600)."""
    path = path or checkpoints_path()
    at = utcnow().isoformat()
    line = {"seq": seq, "hash": last_hash, "at": at}
    line["mac"] = _checkpoint_mac(audit_key(), seq, last_hash, at)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # whole lines, even from several processes
        f.write(json.dumps(line, sort_keys=True) + "\n")
    return line


def checkpoint(*, session: Session) -> dict[str, Any] | None:
    """Attest the last committed event now (`relance audit checkpoint`); None if none."""
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    if last is None:
        return None
    return write_checkpoint(seq=last.seq or 0, last_hash=last.hash)


@dataclass(frozen=True)
class Verdict:
    """What `check` found: the events read and, if any, the first one that disagrees."""

    events: int
    checkpoints: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the chain, the keys, the sequence and the checkpoints all agree."""
        return self.reason is None


def _read_checkpoints(path: Path, key: bytes) -> tuple[list[dict[str, Any]], str | None]:
    if not path.exists():
        return [], None
    out: list[dict[str, Any]] = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        try:
            cp = json.loads(raw)
            good = hmac.compare_digest(
                str(cp["mac"]), _checkpoint_mac(key, int(cp["seq"]), str(cp["hash"]), cp["at"])
            )
        except (ValueError, KeyError, TypeError):
            return out, f"ligne {n} du fichier des points de contrôle illisible"
        if not good:
            return out, (
                f"ligne {n} du fichier des points de contrôle : signature invalide "
                "(point de contrôle modifié, ou clé d'audit différente)"
            )
        out.append(cp)
    return out, None


def _fault(ev: AuditEvent, n: int, prev: str, keyed: bool, key: bytes) -> str | None:
    """Why the n-th event does not belong where it is, or None."""
    if ev.seq != n:
        return f"numéro {ev.seq} où {n} était attendu (événement supprimé ou inséré)"
    if ev.prev_hash != prev:
        return "ne suit pas l'événement précédent (chaîne rompue)"
    if ev.scheme == KEYED:
        want = _mac(key, n, prev, ev.at, ev.actor, ev.action, ev.target, ev.detail)
        if not hmac.compare_digest(ev.hash, want):
            return "signature HMAC invalide (événement modifié, ou clé d'audit différente)"
        return None
    if ev.scheme == LEGACY and not keyed:
        if ev.hash != _digest(prev, ev.at, ev.actor, ev.action, ev.target, ev.detail):
            return "empreinte invalide (événement modifié)"
        return None
    return f"schéma {ev.scheme} inattendu à cette place (événement réécrit)"


def check(
    *, session: Session, key: bytes | None = None, checkpoints: Path | None = None
) -> Verdict:
    """Verify sequence, chain, HMACs and checkpoints; stop at the first event that disagrees."""
    key = key if key is not None else audit_key()
    cps, bad_file = _read_checkpoints(checkpoints or checkpoints_path(), key)
    prev, n, keyed = GENESIS, 0, False
    by_seq: dict[int, tuple[int, str]] = {}
    for ev in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))):
        n += 1
        why = _fault(ev, n, prev, keyed, key)
        if why is not None:
            return Verdict(n - 1, len(cps), ev.seq, ev.id, why)
        keyed = keyed or ev.scheme == KEYED
        by_seq[n] = (ev.id or 0, ev.hash)
        prev = ev.hash
    if bad_file:
        return Verdict(n, len(cps), None, None, bad_file)
    last_good = 0
    for cp in sorted(cps, key=lambda c: int(c["seq"])):
        seq = int(cp["seq"])
        if seq not in by_seq:
            return Verdict(
                n,
                len(cps),
                n + 1,
                None,
                f"événement n°{n + 1} manquant : le point de contrôle signé du {cp['at']} "
                f"atteste {seq} événements, le journal s'arrête au n°{n} (fin supprimée)",
            )
        if by_seq[seq][1] != cp["hash"]:
            return Verdict(
                n,
                len(cps),
                seq,
                by_seq[seq][0],
                f"ne correspond pas au point de contrôle signé du {cp['at']} : le journal a "
                f"été réécrit entre le n°{last_good + 1} et le n°{seq}",
            )
        last_good = seq
    # Read from the database, not the session's identity map (writers update it in SQL).
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(col(AuditHead.id) == 1)
    ).first()
    why = _head_fault(int(head[0]), str(head[1]), n, prev) if head is not None else None
    if why is not None:
        return Verdict(n, len(cps), n + 1, None, why)
    return Verdict(n, len(cps))


def _head_fault(seq: int, head_hash: str, n: int, last_hash: str) -> str | None:
    """Why the head (written in the same transaction as every event) disagrees with the last
    event on record, or None: it catches a tail deleted after the last checkpoint."""
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
