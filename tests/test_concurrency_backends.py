"""Claims under real concurrency, on SQLite (a file) and PostgreSQL: threads that overlap.

Each test starts its workers behind a barrier so they hit the database at the same moment,
each with its own session, and counts what an outside observer would see: provider calls
per idempotency key, action rows, claims per call and per person.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.catalog import load_campaign
from campaigns.db import session_scope
from campaigns.dispatch import Adapters, dispatch
from campaigns.membership import admit_targets
from campaigns.models import QUEUED, Action
from campaigns.registry import register_campaign
from campaigns.simulator import at
from campaigns.tick import tick
from channels.base import Receipt
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox, MailboxMessage
from tests.factories import population

C = load_campaign("sophia-ald8")
D = C.definition
ANCHOR = date(2026, 6, 15)
MAILBOX_DAY = ANCHOR - timedelta(days=45)


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..n-1) in n threads released at once; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


class CountingMailbox:
    """A provider that counts deposits per idempotency key (and takes a little time)."""

    def __init__(self, inner: LocalMailbox) -> None:
        self.inner, self.calls, self.lock = inner, Counter[str](), threading.Lock()

    def deposit(self, message: MailboxMessage) -> Receipt:
        with self.lock:
            self.calls[message.key] += 1
        time.sleep(0.001)
        return self.inner.deposit(message)

    def read_status(self, provider_id: str) -> str:
        return self.inner.read_status(provider_id)


def admitted(engine: Engine, n: int, **kw: Any) -> None:
    targets, people = population(n, anchor=ANCHOR, **kw)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=ANCHOR - timedelta(80)
        )


@pytest.mark.parametrize("batch", [1, 500])
def test_concurrent_dispatchers_call_the_provider_once_per_key(
    engine: Engine, tmp_path: Path, batch: int
) -> None:
    admitted(engine, 40, telephone=None)
    tick(engine=engine, definition=D, today=MAILBOX_DAY)
    with session_scope(engine) as s:
        due = {
            a.key
            for a in s.exec(select(Action).where(Action.channel == "mailbox", Action.state == QUEUED))
        }
    assert len(due) > 20
    box = CountingMailbox(LocalMailbox(tmp_path))
    adapters = Adapters(mailbox=box, email=LocalEmail(tmp_path), letters=LocalLetters(tmp_path))  # type: ignore[arg-type]
    together(
        4,
        lambda i: dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters,
            today=MAILBOX_DAY,
            now=at(MAILBOX_DAY, 8),
            batch_size=batch,
        ),
    )
    twice = {k: n for k, n in box.calls.items() if n > 1}
    print(f"batch {batch}: {sum(box.calls.values())} calls for {len(due)} keys, {len(twice)} twice")
    assert twice == {}
    assert set(box.calls) == due
    with session_scope(engine) as s:
        assert {a.state for a in s.exec(select(Action).where(Action.channel == "mailbox"))} == {
            "sent"
        }
