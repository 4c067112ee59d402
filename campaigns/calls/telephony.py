"""Agent-bridged calls from the console, and what the telephony reports back about them.

The adviser's outcome stays on the action (their decision); the telephony status is kept on
a PhoneCall beside it. A PhoneCall row (with its key) is committed before the provider is
asked to dial, so a crash never places a call we do not know about, and a double click finds
the live call instead of dialling again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from campaigns.calls.queue import CallError, _blocked_now
from campaigns.ledger.models import (
    CALL_END_STATUSES,
    QUEUED,
    Action,
    Person,
    PhoneCall,
    ProviderEvent,
)
from channels.base import ChannelError
from channels.phone import E164, BridgeCall, PhoneBridge

# A call with no provider id yet is presumed live this long (the provider call in flight).
DIALLING = timedelta(minutes=2)

# Twilio's statuses as we keep them, and their order: a later event never moves back.
_STATUS = {
    "queued": "initiated",
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
    "answered": "answered",
    **{s: s for s in CALL_END_STATUSES},
}
_RANK = {"initiated": 0, "ringing": 1, "answered": 2, **{s: 3 for s in CALL_END_STATUSES}}


class DialError(CallError):
    """A call that could not be placed; the message is meant for the adviser."""


def latest_call(*, session: Session, action_id: int) -> PhoneCall | None:
    """The most recent call placed for this call-list entry."""
    return session.exec(
        select(PhoneCall)
        .where(PhoneCall.action_id == action_id)
        .order_by(col(PhoneCall.created_at).desc(), col(PhoneCall.id).desc())
    ).first()


def _live(call: PhoneCall | None, now: datetime) -> bool:
    if call is None or call.status in CALL_END_STATUSES:
        return False
    return call.call_sid is not None or call.created_at > now - DIALLING


def start_call(
    *,
    session: Session,
    action_id: int,
    adviser: str,
    adviser_line: str,
    phone: PhoneBridge,
    now: datetime,
) -> PhoneCall:
    """Bridge the adviser to the person of a call they hold; a live call is returned as is."""
    # A write first, checking the claim: it holds the action (the database's write lock on
    # SQLite, the row lock on PostgreSQL) until the call row is committed, so a second click
    # waits and then finds that call live instead of counting past it and dialling again.
    held = session.execute(
        update(Action)
        .where(
            col(Action.id) == action_id,
            col(Action.channel) == "phone",
            col(Action.state) == QUEUED,
            col(Action.claimed_by) == adviser,
            or_(col(Action.lease_until).is_(None), col(Action.lease_until) >= now),
        )
        .values(lease_until=Action.lease_until)
        .returning(col(Action.id))
        .execution_options(synchronize_session=False)
    ).first()
    action = session.get(Action, action_id)
    if held is None or action is None:
        raise DialError("cet appel ne vous est pas attribué")
    if not E164.match(adviser_line or ""):
        raise DialError("votre ligne n'est pas un numéro valide (format +33…)")
    blocked = _blocked_now(session, action, now)
    if blocked:
        raise DialError(f"appel impossible : {blocked}")
    current = latest_call(session=session, action_id=action_id)
    if _live(current, now):
        assert current is not None
        return current
    n = session.exec(
        select(func.count()).select_from(PhoneCall).where(PhoneCall.action_id == action_id)
    ).one()
    call = PhoneCall(
        key=f"{action.key}:dial:{n + 1}",
        action_id=action_id,
        adviser=adviser,
        created_at=now,
        updated_at=now,
    )
    session.add(call)
    try:
        session.commit()  # the key is on record before the provider hears of it
    except IntegrityError:
        # A concurrent click wrote the same key first: that call is the one.
        session.rollback()
        again = latest_call(session=session, action_id=action_id)
        if again is None:
            raise
        return again
    person = session.get(Person, action.person_id)
    assert person is not None and person.telephone
    try:
        receipt = phone.bridge(
            BridgeCall(
                key=call.key,
                adviser_line=adviser_line,
                callee=person.telephone,
                callback_query=urlencode({"key": call.key}),
            )
        )
    except ChannelError as e:
        call.status, call.error, call.ended_at, call.updated_at = "failed", str(e), now, now
        session.commit()
        raise DialError(f"l'appel n'a pas pu être passé : {e}") from None
    call.call_sid, call.updated_at = receipt.provider_id, now
    session.commit()
    return call


def _when(params: Mapping[str, str], now: datetime) -> datetime:
    try:
        at = parsedate_to_datetime(params.get("Timestamp", ""))
    except (TypeError, ValueError):
        return now
    return at if at.utcoffset() is not None else now


def _hold(session: Session, where: Any) -> PhoneCall | None:
    """The call matching `where`, taken with a write (a no-op UPDATE) held until commit."""
    found = session.execute(
        update(PhoneCall)
        .where(where)
        .values(updated_at=PhoneCall.updated_at)
        .returning(col(PhoneCall.id))
        .execution_options(synchronize_session=False)
    ).first()
    return session.get(PhoneCall, found[0], populate_existing=True) if found else None


def _find(session: Session, params: Mapping[str, str]) -> PhoneCall | None:
    # Held, not just read: callbacks for one call then apply one after the other, each on
    # what the previous one wrote (read outside the write lock, SQLite let a late "ringing"
    # overwrite "completed").
    key = params.get("key")
    if key:
        found = _hold(session, col(PhoneCall.key) == key)
        if found is not None:
            return found
    sids = [s for s in (params.get("ParentCallSid"), params.get("CallSid")) if s]
    if not sids:
        return None
    return _hold(session, col(PhoneCall.call_sid).in_(sids))


def record_status(*, session: Session, params: Mapping[str, str], now: datetime) -> bool:
    """Apply one Twilio status callback; False when it was seen before (nothing changes)."""
    sid, raw = params.get("CallSid", ""), params.get("CallStatus", "")
    if not sid or not raw:
        raise ValueError("a status callback needs CallSid and CallStatus")
    callee_leg = params.get("leg") == "callee"
    call = _find(session, params)
    had_callee_events = call is not None and (
        session.exec(
            select(ProviderEvent.id).where(
                ProviderEvent.provider == "twilio",
                ProviderEvent.ref == call.key,
                col(ProviderEvent.kind).startswith("callee_"),
            )
        ).first()
        is not None
    )
    event = ProviderEvent(
        provider="twilio",
        event_id=f"{sid}:{raw}:{params.get('SequenceNumber', '')}"[:128],
        kind=f"{'callee' if callee_leg else 'adviser'}_{raw}"[:32],
        ref=call.key if call is not None else params.get("key"),
        received_at=now,
        # Identifiers and timings only: the From/To numbers are not kept.
        detail={
            k: params[k]
            for k in (
                "CallSid",
                "ParentCallSid",
                "CallStatus",
                "CallDuration",
                "Timestamp",
                "SequenceNumber",
                "leg",
            )
            if k in params
        },
    )
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return False
    status = _STATUS.get(raw)
    if call is None or status is None:
        return True  # kept for the record; nothing of ours to update
    if call.call_sid is None:
        # The provider took the call but we never stored its answer (crash): recover it.
        call.call_sid = params.get("ParentCallSid") if callee_leg else sid
    if callee_leg:
        # The person's leg is what the adviser cares about: its first event replaces whatever
        # the adviser's leg said; after that, statuses only move forward.
        if had_callee_events and _RANK[status] <= _RANK.get(call.status, 0):
            return True
        if not had_callee_events:
            call.error = None
        _apply(call, status, params, now)
    elif not had_callee_events:
        if _RANK[status] <= _RANK.get(call.status, 0):
            return True
        _apply(call, status, params, now)
        if status in CALL_END_STATUSES and status != "completed":
            call.error = f"adviser line: {raw}"
    return True


def _apply(call: PhoneCall, status: str, params: Mapping[str, str], now: datetime) -> None:
    call.status, call.updated_at = status, now
    if status == "answered":
        call.answered_at = call.answered_at or _when(params, now)
    if status in CALL_END_STATUSES:
        call.ended_at = _when(params, now)
        duration = params.get("CallDuration", "")
        if duration.isascii() and duration.isdigit():
            call.duration_s = int(duration)
