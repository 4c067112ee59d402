"""Dispatch failures on a real database: jittered retries, final failures and what comes next."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.dispatch import (
    MAX_TRIES,
    RETRY_CAP,
    RETRY_FLOOR,
    Adapters,
    dispatch,
    retry_delay,
)
from campaigns.cascade.tick import tick
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, MemberEvent, Person
from campaigns.measurement.why import why
from channels.base import PermanentFailure, TemporaryFailure
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import FakeMailbox, LocalMailbox
from console.demo.simulator import at
from tests.test_dispatch import ANCHOR, MAILBOX_DAY, C, D, setup


def adapters(tmp: Path, mailbox: object | None = None) -> Adapters:
    return Adapters(
        mailbox=mailbox or LocalMailbox(tmp),  # type: ignore[arg-type]
        email=LocalEmail(tmp),
        letters=LocalLetters(tmp),
    )


def mailbox_keys(engine: Engine) -> list[str]:
    with session_scope(engine) as s:
        return [
            a.key
            for a in s.exec(
                select(Action).where(Action.channel == "mailbox").order_by(Action.id)  # type: ignore[arg-type]
            )
        ]


def events(engine: Engine, kind: str) -> list[MemberEvent]:
    with session_scope(engine) as s:
        rows = list(s.exec(select(MemberEvent).where(MemberEvent.kind == kind)))
        s.expunge_all()
        return rows


def test_retry_delays_grow_with_full_jitter_and_replay_from_the_key() -> None:
    keys = [f"sophia-ald8:{i}:mailbox:1" for i in range(200)]
    for tries in (1, 2, 3, 6, 12):
        ceiling = min(RETRY_CAP, timedelta(minutes=2) * 2 ** (tries - 1))
        delays = [retry_delay(k, tries) for k in keys]
        assert all(RETRY_FLOOR <= d <= RETRY_FLOOR + ceiling for d in delays)
        # Jitter spreads a failed batch: many distinct delays, over most of the range.
        assert len(set(delays)) > 150
        assert max(delays) - min(delays) > ceiling * 0.8
        assert delays == [retry_delay(k, tries) for k in keys]
    assert retry_delay(keys[0], 1) != retry_delay(keys[0], 2)


def test_a_temporary_failure_is_scheduled_with_the_jittered_delay(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 6, MAILBOX_DAY, telephone=None)
    keys = mailbox_keys(engine)
    box = FakeMailbox(fail={k: TemporaryFailure("busy", code="rate_limited") for k in keys[:2]})
    now = at(MAILBOX_DAY, 8)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, box),
        today=MAILBOX_DAY,
        now=now,
    )
    assert rep["failed_retryable"] == 2 and rep["sent"] == len(keys) - 2
    with session_scope(engine) as s:
        for k in keys[:2]:
            a = s.exec(select(Action).where(Action.key == k)).one()
            assert a.state == "failed_retryable" and a.tries == 1 and a.sent_at is None
            assert a.next_try_at == now + retry_delay(k, 1)
        ok = s.exec(select(Action).where(Action.key == keys[2])).one()
        assert ok.sent_at == now and ok.state == "sent"


def test_retries_exhausted_fail_final_and_name_the_next_step(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 4, MAILBOX_DAY, telephone=None)
    key = mailbox_keys(engine)[0]
    box = FakeMailbox()
    now = at(MAILBOX_DAY, 8)
    for n in range(1, MAX_TRIES + 1):
        box.fail[key] = TemporaryFailure("service down", code="unavailable")
        rep = dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters(tmp_path, box),
            today=MAILBOX_DAY,
            now=now,
        )
        assert rep.get("failed_retryable", 0) == (1 if n < MAX_TRIES else 0)
        assert rep.get("failed_final", 0) == (1 if n == MAX_TRIES else 0)
        now += timedelta(hours=5)  # past any retry delay (capped at 4 h + 1 min)
    assert box.calls.count(key) == MAX_TRIES
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.key == key)).one()
        assert (a.state, a.reason, a.tries) == ("failed_final", "unavailable", MAX_TRIES)
        member_id = a.member_id
    [ev] = events(engine, "step_failed")
    assert ev.member_id == member_id
    assert ev.detail["step"] == "mailbox" and ev.detail["reason"] == "unavailable"
    assert ev.detail["next_step"] == "letter"
    assert ev.detail["text"] == "mailbox failed: unavailable → letter"


def test_no_account_moves_on_to_the_letter(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 4, MAILBOX_DAY, telephone=None)
    key = mailbox_keys(engine)[0]
    box = FakeMailbox(fail={key: PermanentFailure("no ameli account", code="no_account")})
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, box),
        today=MAILBOX_DAY,
        now=at(MAILBOX_DAY, 8),
    )
    assert rep["failed_final"] == 1
    with session_scope(engine) as s:
        failed = s.exec(select(Action).where(Action.key == key)).one()
        person = s.get(Person, failed.person_id)
        assert person is not None
        psa, rng = person.ben_nir_psa, person.ben_rng_gem
    # The letter's window opens at the renewal: before it nothing is planned, then it is.
    tick(engine=engine, definition=D, today=ANCHOR - timedelta(days=1))
    tick(engine=engine, definition=D, today=ANCHOR)
    with session_scope(engine) as s:
        letters = list(
            s.exec(
                select(Action).where(
                    Action.member_id == failed.member_id, Action.channel == "letter"
                )
            )
        )
        assert [(a.step, a.state, a.due_on) for a in letters] == [("letter", "queued", ANCHOR)]
        story = why(session=s, campaign_id=D.id, ben_nir_psa=psa, ben_rng_gem=rng)
    lines = [line for _, line in story.lines]
    assert "step_failed : mailbox failed: no_account → letter" in lines
    assert any(
        line.startswith("mailbox n°1 (mailbox) échec définitif : no_account") for line in lines
    )


def test_an_invalid_email_marks_the_person_and_the_letter_comes_next(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 4, MAILBOX_DAY, telephone=None)
    now = at(MAILBOX_DAY, 8)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path),
        today=MAILBOX_DAY,
        now=now,
    )
    assert rep["notices_planned"] > 0
    with session_scope(engine) as s:
        notice = s.exec(select(Action).where(Action.channel == "email")).first()
        assert notice is not None
        person = s.get(Person, notice.person_id)
        assert person is not None and not person.email_invalid
        person.email = "no-at-sign.example.org"
        person_id = person.id
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="email",
        adapters=adapters(tmp_path),
        today=MAILBOX_DAY,
        now=now + timedelta(minutes=5),
    )
    assert rep["failed_final"] == 1
    with session_scope(engine) as s:
        p = s.get(Person, person_id)
        assert p is not None and p.email_invalid and not p.address_invalid
    [ev] = events(engine, "step_failed")
    assert (ev.detail["step"], ev.detail["reason"], ev.detail["next_step"]) == (
        "mailbox_notice",
        "invalid_email",
        "letter",
    )


def test_a_letter_that_cannot_be_printed_leaves_nothing_next(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 3, ANCHOR, telephone=None, compte_ameli=False)
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.channel == "letter")).first()
        assert a is not None
        p = s.get(Person, a.person_id)
        assert p is not None
        p.address_lines = ["M. X", "A LINE THAT IS FAR TOO LONG FOR ANY WINDOW ENVELOPE", "EVRY"]
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="letter",
        adapters=adapters(tmp_path),
        today=ANCHOR,
        now=at(ANCHOR, 8),
    )
    assert rep["failed_final"] == 1
    [ev] = events(engine, "step_failed")
    assert (ev.detail["step"], ev.detail["reason"], ev.detail["next_step"]) == (
        "letter",
        "invalid_address",
        "none",
    )


class _FastWebhookMailbox(FakeMailbox):
    """A provider whose delivery event lands (in its own transaction) before it answers."""

    engine: Engine | None = None

    def deposit(self, message):  # type: ignore[no-untyped-def]
        receipt = super().deposit(message)
        assert self.engine is not None
        with session_scope(self.engine) as s:
            a = s.exec(select(Action).where(Action.key == message.key)).one()
            a.state, a.delivered_at = "delivered", at(MAILBOX_DAY, 8)
        return receipt


def test_an_event_faster_than_our_commit_is_not_overwritten(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 3, MAILBOX_DAY, telephone=None)
    n = len(mailbox_keys(engine))
    box = _FastWebhookMailbox()
    box.engine = engine
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, box),
        today=MAILBOX_DAY,
        now=at(MAILBOX_DAY, 8),
    )
    assert n >= 2 and rep["sent"] == n, rep
    with session_scope(engine) as s:
        rows = list(s.exec(select(Action).where(Action.channel == "mailbox")))
        assert {a.state for a in rows} == {"delivered"}
        assert all(a.provider_id and a.sent_at for a in rows)
