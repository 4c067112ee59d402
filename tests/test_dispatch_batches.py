"""Mailbox batch deposits in the dispatcher: chunks in flight, per-message results, crashes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.dispatch import Adapters, dispatch, mailbox_claim
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action
from channels.base import ChannelError, PermanentFailure, Receipt, TemporaryFailure
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import FakeMailbox, MailboxMessage
from console.demo.simulator import at
from tests.test_dispatch import MAILBOX_DAY, C, setup

NOW = at(MAILBOX_DAY, 8)


class SlowBox(FakeMailbox):
    """A fake mailbox whose batch calls take time, counting how many overlap."""

    def __init__(self, crash_after: int | None = None) -> None:
        super().__init__()
        self.lock, self.live, self.most = threading.Lock(), 0, 0
        self.crash_after = crash_after

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        with self.lock:
            self.live += 1
            self.most = max(self.most, self.live)
            n = len(self.batches)
        time.sleep(0.05)
        try:
            if self.crash_after is not None and n >= self.crash_after:
                # Our process died: this request never left, the earlier ones' answers are lost.
                raise SystemExit("killed")
            return super().deposit_batch(messages)
        finally:
            with self.lock:
                self.live -= 1


def adapters(tmp: Path, box: FakeMailbox, batch: int, in_flight: int) -> Adapters:
    return Adapters(
        mailbox=box,
        email=LocalEmail(tmp),
        letters=LocalLetters(tmp),
        mailbox_batch=batch,
        mailbox_in_flight=in_flight,
    )


def mailbox_rows(engine: Engine) -> dict[str, Action]:
    with session_scope(engine) as s:
        rows = list(s.exec(select(Action).where(Action.channel == "mailbox")))
        for r in rows:
            s.expunge(r)
    return {a.key: a for a in rows}


def test_a_claim_goes_in_batches_several_in_flight(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 30, MAILBOX_DAY, telephone=None)
    n = len(mailbox_rows(engine))
    assert n >= 20
    box = SlowBox()
    ad = adapters(tmp_path, box, batch=4, in_flight=3)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=ad,
        today=MAILBOX_DAY,
        now=NOW,
        batch_size=mailbox_claim(ad),
    )
    assert rep["sent"] == n and sum(box.batches) == n
    claims = [12] * (n // 12) + ([n % 12] if n % 12 else [])  # 3 in flight x 4 a claim
    assert max(box.batches) == 4 and len(box.batches) == sum(-(-c // 4) for c in claims)
    assert box.most == 3  # three requests in flight, never more
    assert {a.state for a in mailbox_rows(engine).values()} == {"sent"}


def test_a_partial_failure_records_each_message_and_loses_none(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 12, MAILBOX_DAY, telephone=None)
    keys = sorted(mailbox_rows(engine), key=lambda k: mailbox_rows(engine)[k].id or 0)
    assert len(keys) >= 10
    box = FakeMailbox(
        fail={
            keys[0]: TemporaryFailure("busy", code="rate_limited"),
            keys[1]: PermanentFailure("Pas de compte ameli", code="no_account"),
        },
        # The second request fails whole (its 3 messages were not deposited).
        fail_batches=[],
    )
    ad = adapters(tmp_path, box, batch=3, in_flight=1)
    original = box.deposit_batch
    count = Counter[str]()

    def flaky(messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        count["calls"] += 1
        if count["calls"] == 2:
            raise TemporaryFailure("mailbox service answered 503", code="unavailable")
        return original(messages)

    box.deposit_batch = flaky  # type: ignore[method-assign]
    rep = dispatch(
        engine=engine, campaign=C, channel="mailbox", adapters=ad, today=MAILBOX_DAY, now=NOW
    )
    rows = mailbox_rows(engine)
    whole = keys[3:6]
    assert rep["failed_final"] == 1 and rep["failed_retryable"] == 1 + len(whole)
    assert rep["sent"] == len(keys) - 2 - len(whole)
    assert (rows[keys[0]].state, rows[keys[1]].state) == ("failed_retryable", "failed_final")
    assert rows[keys[1]].reason == "no_account"
    assert {rows[k].state for k in whole} == {"failed_retryable"}
    assert {rows[k].error for k in whole} == {"mailbox service answered 503"}
    assert not (set(box.deposits) & set(whole))
    # Later: the retryable ones go again; each key ends deposited exactly once.
    again = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=ad,
        today=MAILBOX_DAY,
        now=NOW + timedelta(hours=5),
    )
    assert again["sent"] == 1 + len(whole)
    rows = mailbox_rows(engine)
    assert sorted(k for k, a in rows.items() if a.state == "sent") == sorted(box.deposits)
    assert len(box.deposits) == len(keys) - 1


def test_a_crash_mid_batch_then_a_rerun_deposits_each_key_once(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 20, MAILBOX_DAY, telephone=None)
    keys = set(mailbox_rows(engine))
    box = SlowBox(crash_after=1)  # the second request in flight "kills" the dispatcher
    ad = adapters(tmp_path, box, batch=5, in_flight=2)
    with pytest.raises(SystemExit):
        dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=ad,
            today=MAILBOX_DAY,
            now=NOW,
            batch_size=100,
        )
    deposited = set(box.deposits)
    assert deposited and deposited < keys  # some went out, their results never written
    assert {a.state for a in mailbox_rows(engine).values()} == {"sending"}
    box.crash_after = None
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=ad,
        today=MAILBOX_DAY,
        now=NOW + timedelta(minutes=1),
        stale_after=timedelta(0),
    )
    assert rep["sent"] == len(keys)
    assert set(box.deposits) == keys  # one deposit per key: the replays were absorbed
    assert Counter(box.calls)[next(iter(deposited))] == 2  # sent twice, deposited once
    assert {a.state for a in mailbox_rows(engine).values()} == {"sent"}


def test_batch_settings_out_of_range_are_refused_in_french(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="entre 1 et 500"):
        adapters(tmp_path, FakeMailbox(), batch=501, in_flight=1)
    with pytest.raises(ValueError, match="au moins 1"):
        adapters(tmp_path, FakeMailbox(), batch=10, in_flight=0)


def test_the_settings_reach_the_dispatcher_and_a_bad_one_is_named(tmp_path: Path) -> None:
    from campaigns.settings import Settings
    from flows.adapters import build_adapters

    ad = build_adapters(
        Settings(data_dir=tmp_path, mailbox_batch_size=200, mailbox_requests_in_flight=3)
    )
    assert (ad.mailbox_batch, ad.mailbox_in_flight, mailbox_claim(ad)) == (200, 3, 600)
    with pytest.raises(ValueError, match="RELANCE_MAILBOX_BATCH_SIZE"):
        build_adapters(Settings(data_dir=tmp_path, mailbox_batch_size=0))


def test_lanes_share_the_batches_and_each_key_goes_once(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 40, MAILBOX_DAY, telephone=None)
    keys = set(mailbox_rows(engine))
    box = SlowBox()
    ad = adapters(tmp_path, box, batch=3, in_flight=2)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=ad,
        today=MAILBOX_DAY,
        now=NOW,
        batch_size=6,
        lanes=3,
    )
    assert rep["sent"] == len(keys) and rep["notices_planned"] == len(keys)
    assert rep["batches"] == -(-len(keys) // 6)
    assert Counter(box.calls) == Counter(keys)  # each key sent once, by one lane
    assert box.most == 2  # three lanes, yet never more requests in flight than allowed
    assert {a.state for a in mailbox_rows(engine).values()} == {"sent"}
    with session_scope(engine) as s:
        notices = list(s.exec(select(Action).where(Action.step == "mailbox_notice")))
    assert len({n.key for n in notices}) == len(notices) == len(keys)


def test_a_lane_that_fails_stops_the_others_and_a_rerun_loses_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 40, MAILBOX_DAY, telephone=None)
    keys = set(mailbox_rows(engine))
    box = SlowBox(crash_after=2)
    ad = adapters(tmp_path, box, batch=4, in_flight=1)
    with pytest.raises(SystemExit):
        dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=ad,
            today=MAILBOX_DAY,
            now=NOW,
            batch_size=4,
            lanes=2,
        )
    # Two deposits went through, the third "killed" its lane; the other claimed no more.
    assert len(box.batches) == 2
    left = Counter(a.state for a in mailbox_rows(engine).values())
    assert left["sent"] == 8 and left["queued"] == len(keys) - left["sent"] - left["sending"]
    assert 1 <= left["sending"] <= 8 and left["queued"] > 0
    box.crash_after = None
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=ad,
        today=MAILBOX_DAY,
        now=NOW + timedelta(minutes=1),
        stale_after=timedelta(0),
        lanes=2,
    )
    assert rep["sent"] == len(keys) - 8
    assert set(box.deposits) == keys and len(box.deposits) == len(keys)
    assert {a.state for a in mailbox_rows(engine).values()} == {"sent"}


def test_lanes_below_one_are_refused_in_french(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RELANCE_DISPATCH_LANES doit valoir au moins 1"):
        dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters(tmp_path, FakeMailbox(), batch=3, in_flight=1),
            today=MAILBOX_DAY,
            lanes=0,
        )


def test_a_row_that_falls_due_behind_the_claims_is_sent_in_the_same_run(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 20, MAILBOX_DAY, telephone=None)
    rows = sorted(mailbox_rows(engine).values(), key=lambda a: a.id or 0)
    first = rows[0]
    with session_scope(engine) as s:
        s.get_one(Action, first.id).due_on = MAILBOX_DAY + timedelta(days=1)
    box = FakeMailbox()
    original = box.deposit_batch

    def deposit(messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        # While the claims move up the ids, the lowest one falls due (moved by a manager).
        with session_scope(engine) as s:
            s.get_one(Action, first.id).due_on = MAILBOX_DAY
        return original(messages)

    box.deposit_batch = deposit  # type: ignore[method-assign]
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, box, batch=3, in_flight=1),
        today=MAILBOX_DAY,
        now=NOW,
        batch_size=3,
    )
    assert rep["sent"] == len(rows) and first.key in box.deposits
    assert {a.state for a in mailbox_rows(engine).values()} == {"sent"}
