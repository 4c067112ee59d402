"""The dispatcher's reads and writes as plain rows: claim, context, results, one statement each.

A mass batch (2,000 mailbox messages, 20,000 letters) costs mostly what the ORM adds per row
(objects built, tracked, expired): here the claim returns the columns sending needs, the
members and people come back as tuples with only the contact detail the channel uses
decrypted, and each kind of result is written by one `executemany`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, case, func, or_, update
from sqlalchemy.sql import Select
from sqlmodel import Session, col, select

from campaigns.definition.vocabulary import Channel
from campaigns.ledger.db import among, unnest_values
from campaigns.ledger.models import (
    CANCELLED,
    FAILED_RETRYABLE,
    QUEUED,
    SENDING,
    SUCCESS_STATES,
    Action,
    Member,
    Person,
)
from campaigns.ledger.models import Campaign as CampaignRow


class Claimed(NamedTuple):
    """A claimed action: what sending it and recording its result need."""

    id: int
    key: str
    campaign_id: str
    member_id: int
    person_id: int
    step: str
    channel: str
    attempt: int
    tries: int
    priority: bool
    anchor_date: date | None
    definition_version: int | None


class MemberView(NamedTuple):
    """A member as the send-time checks and the templates see it."""

    id: int
    status: str
    status_reason: str | None
    anchor_date: date
    priority: bool
    gaps: list[str]
    echelon: str


class PersonView(NamedTuple):
    """A person as the policy and the templates see them; `contact` is the channel's detail.

    `contact` is the decrypted NIR for the mailbox, the e-mail address for e-mail, None for a
    letter (nothing decrypted that the channel does not use).
    """

    id: int
    ben_nir_psa: str
    ben_rng_gem: int
    civilite: str
    nom: str
    prenom: str
    birth_year: int | None
    birth_month: int | None
    address_lines: list[str]
    departement: str
    deceased_on: date | None
    phone_invalid: bool
    email_invalid: bool
    address_invalid: bool
    compte_ameli: bool
    contact: str | None
    # Whether a phone number and an e-mail address are on file (asked of the database: nothing
    # decrypted for it); the contact policy's `phone_ok` and `email_ok` start from them.
    has_phone: bool = False
    has_email: bool = False


_CLAIMED = tuple(getattr(Action, f) for f in Claimed._fields)
_MEMBER = tuple(getattr(Member, f) for f in MemberView._fields)
_PERSON = tuple(
    getattr(Person, f) for f in PersonView._fields if f not in ("contact", "has_phone", "has_email")
)
_ON_FILE = (col(Person.telephone).is_not(None), col(Person.email).is_not(None))
# The one contact detail each channel sends to: decrypted for that channel only.
_CONTACT: dict[str, Any] = {Channel.MAILBOX: Person.nir, Channel.EMAIL: Person.email}


def due_actions(
    campaign_id: str, channel: str, today: date, now: datetime, stale_before: datetime
) -> Select[Any]:
    """The ids of a channel's actions that may be claimed now (campaign not halted)."""
    # Paused (or ended) by its manager: nothing is sent; queued actions stay queued, held.
    halted = select(CampaignRow.id).where(
        col(CampaignRow.id) == campaign_id,
        col(CampaignRow.paused_at).is_not(None) | col(CampaignRow.ended_at).is_not(None),
    )
    return select(Action.id).where(
        Action.campaign_id == campaign_id,
        col(Action.campaign_id).not_in(halted.scalar_subquery()),
        Action.channel == channel,
        col(Action.due_on) <= today,
        or_(
            col(Action.state) == QUEUED,
            (col(Action.state) == FAILED_RETRYABLE) & (col(Action.next_try_at) <= now),
            (col(Action.state) == SENDING) & (col(Action.updated_at) < stale_before),
        ),
    )


def claim_statement(
    session: Session,
    *,
    campaign_id: str,
    channel: str,
    today: date,
    now: datetime,
    limit: int,
    stale_before: datetime,
    after_id: int = 0,
) -> Any:
    """The UPDATE that marks up to `limit` due actions `sending` (RETURNING left to callers).

    `after_id`: only actions past that id (the dispatcher's cursor), so that a claim starts
    where the last one ended instead of walking every action already sent.
    """
    due = due_actions(campaign_id, channel, today, now, stale_before)
    due = due.where(col(Action.id) > after_id).order_by(col(Action.id)).limit(limit)
    chosen: Any = col(Action.id).in_(due.scalar_subquery())
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
        # `= ANY(ARRAY(…))`: the batch's ids found by their key; `IN (subquery)` got a hash
        # join over a scan of the whole table, every claim.
        chosen = col(Action.id) == func.any(func.array(due.scalar_subquery()))
    # One statement: on SQLite it runs under the write lock, so no other dispatcher can read
    # the rows between our choice and our mark (a SELECT then UPDATE could, and did).
    marked = {"state": SENDING, "tries": Action.tries + 1, "updated_at": now}
    return update(Action).where(chosen).values(**marked)


@contextmanager
def ids_in_order(session: Session) -> Iterator[None]:
    """PostgreSQL: what runs inside walks its index in order (no bitmap scan, no sort).

    A claim goes up the ids from the dispatcher's cursor. With statistics older than the
    day's rows (e-mail notices inserted by the mailbox dispatch an hour before look like
    none), the planner read every claimable row and sorted them, each claim: quadratic over a
    region's day (1 M notices went at 4,700 /s instead of 9,000).
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        yield
        return
    knobs = ("enable_bitmapscan", "enable_sort")
    before = [conn.exec_driver_sql(f"SHOW {k}").scalar_one() for k in knobs]
    for k in knobs:
        conn.exec_driver_sql(f"SELECT set_config('{k}', 'off', true)")
    try:
        yield
    finally:
        # What the transaction had before, not the server's default.
        for k, value in zip(knobs, before, strict=True):
            conn.exec_driver_sql("SELECT set_config(%(k)s, %(v)s, true)", {"k": k, "v": value})


def claim_rows(
    *,
    session: Session,
    campaign_id: str,
    channel: str,
    today: date,
    now: datetime,
    limit: int,
    stale_before: datetime,
    after_id: int = 0,
) -> list[Claimed]:
    """Take up to `limit` due actions of a channel past `after_id`, mark them `sending`, and
    return their rows in id order.

    A `sending` row last touched before `stale_before` was left by a dispatcher that died: it
    is taken again and sent with the same key.
    """
    stmt = claim_statement(
        session,
        campaign_id=campaign_id,
        channel=channel,
        today=today,
        now=now,
        limit=limit,
        stale_before=stale_before,
        after_id=after_id,
    ).returning(*_CLAIMED)
    with ids_in_order(session):
        rows = session.connection().execute(stmt).all()
    return sorted((Claimed(*r) for r in rows), key=lambda a: a.id)


def member_people(
    session: Session, member_ids: Iterable[int], channel: str
) -> dict[int, tuple[MemberView, PersonView]]:
    """Each member with their person, by member id; only `channel`'s contact detail decrypted."""
    contact = _CONTACT.get(channel)
    columns: list[Any] = [*_MEMBER, *_PERSON, *_ON_FILE]
    if contact is not None:
        columns.append(contact)
    stmt = (
        select(*columns)
        .join(Person, col(Person.id) == col(Member.person_id))
        .where(among(session, Member.id, sorted(set(member_ids))))
    )
    k, n = len(_MEMBER), len(_MEMBER) + len(_PERSON)
    out: dict[int, tuple[MemberView, PersonView]] = {}
    # All at once: iterating the result fetches row by row (~17 µs a row in the driver).
    for row in session.connection().execute(stmt).all():
        phone, email = row[n], row[n + 1]
        found = row[n + 2] if contact is not None else None
        out[row[0]] = (MemberView(*row[:k]), PersonView._make((*row[k:n], found, phone, email)))
    return out


def tried_channels(session: Session, member_ids: Iterable[int]) -> dict[int, list[str]]:
    """The channels that reached each member so far, in the order they were used."""
    tried: dict[int, list[str]] = defaultdict(list)
    stmt = (
        select(Action.member_id, Action.channel)
        .where(among(session, Action.member_id, sorted(set(member_ids))))
        .where(col(Action.state).in_(SUCCESS_STATES))
        .order_by(col(Action.id))
    )
    for mid, channel in session.connection().execute(stmt):
        if channel not in tried[mid]:
            tried[mid].append(channel)
    return tried


def _update_by_id(
    session: Session,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    values: Callable[[Any], dict[str, Any]],
    *,
    only_sending: bool,
) -> None:
    """One UPDATE of many actions, each row `(id, *columns)` giving its own values.

    `values(src)` builds the SET clause from `src[name]`, each row's value of a column.
    PostgreSQL: `UPDATE … FROM unnest(arrays)`, one statement; SQLite: one executemany.
    """
    if not rows:
        return
    t = Action.__table__  # type: ignore[attr-defined]
    params: list[dict[str, Any]] | None = None
    src: Any
    if session.get_bind().dialect.name == "postgresql":
        src = unnest_values([("id", "int"), *columns], rows, varying="id")
        stmt = update(t).where(t.c.id == src["id"])
    else:
        src = {name: bindparam(f"_{name}") for name, _ in columns}
        stmt = update(t).where(t.c.id == bindparam("_id"))
        names = ["_id", *(f"_{name}" for name, _ in columns)]
        params = [dict(zip(names, r, strict=True)) for r in rows]
    if only_sending:
        stmt = stmt.where(t.c.state == SENDING)
    stmt = stmt.values(**values(src))
    if params is None:
        session.connection().execute(stmt)
    else:
        session.connection().execute(stmt, params)


def record_cancelled(session: Session, rows: Sequence[tuple[int, str]], now: datetime) -> None:
    """Cancel claimed actions with their reason (rows of id, reason); one statement."""
    _update_by_id(
        session,
        [("reason", "text")],
        rows,
        lambda c: {"state": CANCELLED, "reason": c["reason"], "updated_at": now},
        only_sending=True,
    )


def record_sent(
    session: Session, rows: Sequence[tuple[int, str, str]], today: date, now: datetime
) -> None:
    """Mark sent actions (rows of id, provider id, state) in one statement.

    A provider's webhook can be faster than our commit (delivered, bounced): a row no longer
    `sending` keeps the state and error it recorded; we only add the provider id and times.
    """
    t = Action.__table__  # type: ignore[attr-defined]
    still = t.c.state == SENDING
    _update_by_id(
        session,
        [("pid", "text"), ("state", "text")],
        rows,
        lambda c: {
            "state": case((still, c["state"]), else_=t.c.state),
            "error": case((still, None), else_=t.c.error),
            "provider_id": c["pid"],
            "done_on": today,
            "sent_at": now,
            "updated_at": now,
        },
        only_sending=False,
    )


def record_retryable(
    session: Session, rows: Sequence[tuple[int, str, datetime]], now: datetime
) -> None:
    """Mark failed sends to try again (rows of id, error, next try) in one statement."""
    _update_by_id(
        session,
        [("error", "text"), ("next", "timestamptz")],
        rows,
        lambda c: {
            "state": FAILED_RETRYABLE,
            "error": c["error"],
            "next_try_at": c["next"],
            "updated_at": now,
        },
        only_sending=True,
    )
