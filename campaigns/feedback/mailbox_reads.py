"""Whether people opened their ameli message: the mailbox's read status, polled in batches.

A read is recorded once (a provider event keyed by the message id, and a member event that
`relance why` shows); messages older than the polling horizon are no longer asked about.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from sqlalchemy import and_
from sqlmodel import Session, col, select

from campaigns.ledger.models import SUCCESS_STATES, Action, MemberEvent, ProviderEvent
from channels.base import ChannelError
from channels.mailbox import MailboxGateway

HORIZON = timedelta(days=30)


def unread_messages(
    *, session: Session, campaign_id: str, today: date, after_id: int, limit: int
) -> list[Action]:
    """Sent mailbox messages of the last 30 days whose read was not recorded yet."""
    read = select(ProviderEvent.id).where(
        ProviderEvent.provider == "mailbox",
        ProviderEvent.kind == "read",
        col(ProviderEvent.ref) == col(Action.key),
    )
    return list(
        session.exec(
            select(Action)
            .where(
                Action.campaign_id == campaign_id,
                Action.channel == "mailbox",
                col(Action.state).in_(SUCCESS_STATES),
                col(Action.provider_id).is_not(None),
                and_(col(Action.done_on) >= today - HORIZON, col(Action.id) > after_id),
                ~read.exists(),
            )
            .order_by(col(Action.id))
            .limit(limit)
        )
    )


def record_reads(
    *, session: Session, gateway: MailboxGateway, actions: list[Action], today: date, now: datetime
) -> Counter[str]:
    """Ask the mailbox about each message; record those now read."""
    counts: Counter[str] = Counter()
    for a in actions:
        try:
            status = gateway.read_status(a.provider_id or "")
        except ChannelError:
            counts["unavailable"] += 1  # asked again on the next run
            continue
        counts[status] += 1
        if status != "read":
            continue
        session.add(
            ProviderEvent(
                provider="mailbox",
                event_id=f"read:{a.provider_id}",
                kind="read",
                ref=a.key,
                received_at=now,
            )
        )
        session.add(
            MemberEvent(
                member_id=a.member_id,
                on=today,
                kind="mailbox_read",
                detail={"text": f"message {a.step} read in the ameli account", "key": a.key},
            )
        )
    return counts
