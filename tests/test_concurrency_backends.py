"""Claims under real concurrency, on SQLite (a file) and PostgreSQL: threads that overlap.

Each test starts its workers behind a barrier so they hit the database at the same moment,
each with its own session, and counts what an outside observer would see: provider calls
per idempotency key, action rows, claims per call and per person.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.calls.queue import claim_next, record_outcome
from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import QUEUED, Action, Enrolment, Member, MemberEvent, Person
from campaigns.ledger.registry import register_campaign
from channels.base import ChannelError, Receipt
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox, MailboxMessage, deposit_each
from console.demo.simulator import at
from tests.conftest import _truncate
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
        except BaseException as e:
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

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        return deposit_each(self.deposit, messages)

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
            for a in s.exec(
                select(Action).where(Action.channel == "mailbox", Action.state == QUEUED)
            )
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


def ledger(engine: Engine) -> dict[str, Any]:
    """What the tick wrote, by person key (ids may differ between two databases)."""
    with session_scope(engine) as s:
        psa = {p.id: p.ben_nir_psa for p in s.exec(select(Person))}
        mpsa = {m.id: psa[m.person_id] for m in s.exec(select(Member))}
        return {
            "actions": Counter(
                (psa[a.person_id], a.step, a.attempt, a.state, a.reason, a.due_on)
                for a in s.exec(select(Action))
            ),
            "events": Counter(
                (mpsa[e.member_id], e.kind, e.on, repr(sorted(e.detail.items())))
                for e in s.exec(select(MemberEvent))
            ),
            "members": Counter(
                (mpsa[m.id], m.status, m.status_reason) for m in s.exec(select(Member))
            ),
        }


@pytest.fixture
def no_calls_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Contact pressure allows no call: every call step is deferred, one event per day."""
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_PRESSURE_MAX_CALLS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("no_calls_allowed")
def test_concurrent_tick_runners_write_what_one_runner_writes(engine: Engine) -> None:
    days = [ANCHOR - timedelta(days=d) for d in (60, 45, 20)]

    def play(runners: int) -> dict[str, Any]:
        _truncate(engine)
        admitted(engine, 60)
        with session_scope(engine) as s:
            # A third of the people enrolled: the tick closes them (a departure event each).
            for i in range(0, 60, 3):
                s.add(
                    Enrolment(
                        campaign_id=D.id,
                        ben_nir_psa=f"PSA{i:06d}",
                        ben_rng_gem=1,
                        programme=D.goal.programme,
                        enrolled_on=days[0],
                        channel="online",
                        source="test",
                    )
                )
        for day in days:
            together(
                runners,
                lambda i, day=day: tick(  # type: ignore[misc]
                    engine=engine, definition=D, today=day, batch_size=7
                ),
            )
        return ledger(engine)

    one = play(1)
    assert sum(one["actions"].values()) > 30 and sum(one["events"].values()) > 60
    two = play(3)
    assert two["actions"] == one["actions"]
    assert two["members"] == one["members"]
    assert two["events"] - one["events"] == Counter(), "events written twice"
    assert two["events"] == one["events"]
    assert any("contact_deferred" in k for k in one["events"])


def test_advisers_claiming_at_once_never_share_a_call_or_a_person(engine: Engine) -> None:
    # Every person is in two campaigns: one call each, so a person can be claimed twice.
    other = D.model_copy(update={"id": "sophia-bis"})
    targets, people = population(12, anchor=ANCHOR)
    call_day = ANCHOR - timedelta(days=56)  # a Monday
    with session_scope(engine) as s:
        for d in (D, other):
            register_campaign(session=s, definition=d, launched=True)
            admit_targets(
                session=s,
                definition=d,
                targets=targets,
                people=people,
                today=ANCHOR - timedelta(80),
            )
    for d in (D, other):
        tick(engine=engine, definition=d, today=call_day)
    defs = {D.id: D, other.id: other}
    now = at(call_day, 10)
    advisers = 8

    def claim(i: int) -> tuple[int, int] | None:
        with session_scope(engine) as s:
            c = claim_next(session=s, adviser=f"adv-{i}", now=now, definitions=defs)
        return None if c is None else (c.action_id, c.person_id)

    def close(i: int, action_id: int) -> None:
        with session_scope(engine) as s:
            a = s.get(Action, action_id)
            assert a is not None
            record_outcome(
                session=s,
                action_id=action_id,
                adviser=f"adv-{i}",
                outcome="no_answer",
                now=now,
                definition=defs[a.campaign_id],
            )

    seen: list[int] = []
    for _ in range(4):
        held = together(advisers, claim)
        live = [h for h in held if h is not None]
        assert len({a for a, _ in live}) == len(live), f"a call claimed twice: {live}"
        assert len({p for _, p in live}) == len(live), f"a person claimed twice: {live}"
        seen += [a for a, _ in live]
        for i, h in enumerate(held):
            if h is not None:
                close(i, h[0])
    assert len(seen) >= 4 and len(set(seen)) == len(seen)


def test_clicks_on_dial_at_once_place_one_call(engine: Engine) -> None:
    """Six clicks at once place one call; once it has ended, six more place one more."""
    from campaigns.ledger.models import PhoneCall
    from channels.phone import FakePhone
    from tests.test_phone import claimed, dial

    aid = claimed(engine)
    phone = FakePhone()
    for round_ in range(1, 5):
        keys = together(6, lambda i: dial(engine, aid, phone).key)
        assert len(phone.calls) == round_, f"round {round_}: {phone.calls}"
        assert set(keys) == {phone.calls[-1]}
        with session_scope(engine) as s:
            call = s.exec(select(PhoneCall).where(PhoneCall.key == keys[0])).one()
            call.status = "completed"


def test_status_callbacks_at_once_never_move_a_call_back(engine: Engine) -> None:
    """Twilio's callbacks for one call arriving together: the call ends `completed`."""
    from campaigns.calls.telephony import record_status
    from campaigns.ledger.models import PhoneCall
    from channels.phone import FakePhone
    from tests.test_phone import NOW, claimed, dial

    for round_ in range(4):
        _truncate(engine)
        call = dial(engine, claimed(engine), FakePhone())
        raws = ["initiated", "ringing", "in-progress", "completed"] * 2

        def post(i: int, call: Any = call, raws: list[str] = raws) -> bool:
            params = {"CallSid": call.call_sid or "", "CallStatus": raws[i], "key": call.key}
            params["SequenceNumber"] = str(i)
            with session_scope(engine) as s:
                return record_status(session=s, params=params, now=NOW)

        together(len(raws), post)
        with session_scope(engine) as s:
            status = s.exec(select(PhoneCall.status).where(PhoneCall.key == call.key)).one()
        assert status == "completed", f"round {round_}: {status}"
