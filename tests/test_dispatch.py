"""Channel dispatch on a real database: exactly once, send-time checks, retries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.dispatch import STALE_SENDING, Adapters, dispatch
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.sending import claim_rows
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Opposition, Person
from campaigns.ledger.registry import register_campaign
from channels.base import ChannelError, PermanentFailure, Receipt, TemporaryFailure
from channels.email import EmailMessage, LocalEmail
from channels.letters import Letter, LocalLetters
from channels.mailbox import LocalMailbox, MailboxMessage, deposit_each
from console.demo.simulator import at
from tests.factories import population

C = load_campaign("sophia-ald8")
D = C.definition
ANCHOR = date(2026, 6, 15)
MAILBOX_DAY = ANCHOR - timedelta(days=45)


class CountingMailbox:
    """A mailbox that counts deposits per key and can fail on demand."""

    def __init__(self, inner: LocalMailbox, fail: dict[str, ChannelError] | None = None) -> None:
        self.inner, self.fail, self.calls = inner, fail or {}, []  # type: ignore[var-annotated]

    def deposit(self, message: MailboxMessage) -> Receipt:
        self.calls.append(message.key)
        err = self.fail.pop(message.key, None)
        if err is not None:
            raise err
        return self.inner.deposit(message)

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        return deposit_each(self.deposit, messages)

    def read_status(self, provider_id: str) -> str:
        return self.inner.read_status(provider_id)


class CountingLetters:
    """A printer that counts letters per key."""

    def __init__(self, inner: LocalLetters) -> None:
        self.inner, self.calls = inner, []  # type: ignore[var-annotated]

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        self.calls += [x.key for x in letters]
        return self.inner.print_batch(batch_id, letters)


def setup(engine: Engine, n: int, day: date, **kw: object) -> None:
    targets, people = population(n, anchor=ANCHOR, **kw)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s,
            definition=D,
            targets=targets,
            people=people,
            today=ANCHOR - timedelta(days=80),
        )
    # Calls answered "refused" would be the usual path; here nobody has a phone.
    tick(engine=engine, definition=D, today=day)


def adapters(tmp: Path, **kw: object) -> Adapters:
    return Adapters(
        mailbox=kw.get("mailbox") or LocalMailbox(tmp),  # type: ignore[arg-type]
        email=LocalEmail(tmp),
        letters=kw.get("letters") or LocalLetters(tmp),
    )  # type: ignore[arg-type]


def states(engine: Engine, channel: str) -> list[str]:
    with session_scope(engine) as s:
        return sorted(a.state for a in s.exec(select(Action).where(Action.channel == channel)))


def test_mailbox_messages_go_out_once(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 20, MAILBOX_DAY, telephone=None)
    box = CountingMailbox(LocalMailbox(tmp_path))
    now = at(MAILBOX_DAY, 8)
    first = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=now,
        batch_size=7,
    )
    assert first["sent"] == len(box.calls) > 0
    assert first["batches"] == -(-first["sent"] // 7)
    again = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=now + timedelta(hours=1),
    )
    assert again == {} and len(box.calls) == len(set(box.calls)) == first["sent"]
    assert set(states(engine, "mailbox")) == {"sent"}
    files = list((tmp_path / "mailbox").glob("*"))
    assert len([f for f in files if f.suffix == ".md"]) == first["sent"]


def test_a_crash_after_claiming_is_repaired_without_a_second_document(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 10, MAILBOX_DAY, telephone=None)
    now = at(MAILBOX_DAY, 8)
    box = CountingMailbox(LocalMailbox(tmp_path))
    # First run: the dispatcher claims and deposits, then dies before recording the receipts.
    with session_scope(engine) as s:
        claimed = claim_rows(
            session=s,
            campaign_id=D.id,
            channel="mailbox",
            today=MAILBOX_DAY,
            now=now,
            limit=100,
            stale_before=now - STALE_SENDING,
        )
        n = len(claimed)
    assert n > 0
    # Before the lease is stale nobody takes the rows again.
    assert (
        dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters(tmp_path, mailbox=box),
            today=MAILBOX_DAY,
            now=now + timedelta(minutes=1),
        )
        == {}
    )
    later = now + STALE_SENDING + timedelta(minutes=1)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=later,
    )
    assert rep["sent"] == n
    assert len({p.name for p in (tmp_path / "mailbox").glob("*.md")}) == n


def test_send_time_checks_cancel_with_a_reason(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 6, MAILBOX_DAY, telephone=None)
    with session_scope(engine) as s:
        a = s.exec(
            select(Action).where(Action.channel == "mailbox", Action.state == "queued")
        ).first()
        assert a is not None
        p = s.get(Person, a.person_id)
        assert p is not None
        s.add(
            Opposition(
                ben_nir_psa=p.ben_nir_psa,
                ben_rng_gem=p.ben_rng_gem,
                canal="mailbox",
                opposed_on=MAILBOX_DAY,
                source="test",
            )
        )
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path),
        today=MAILBOX_DAY,
        now=at(MAILBOX_DAY, 8),
    )
    assert rep["cancelled_opposed_mailbox"] == 1
    with session_scope(engine) as s:
        a2 = s.get(Action, a.id)
        assert a2 is not None and (a2.state, a2.reason) == ("cancelled", "opposed_mailbox")


def test_temporary_failures_are_retried_later_and_permanent_ones_are_final(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 6, MAILBOX_DAY, telephone=None)
    with session_scope(engine) as s:
        keys = [
            a.key
            for a in s.exec(
                select(Action).where(Action.channel == "mailbox", Action.state == "queued")
            )
        ]
    assert len(keys) >= 2
    box = CountingMailbox(
        LocalMailbox(tmp_path),
        fail={
            keys[0]: TemporaryFailure("provider busy", code="rate_limited"),
            keys[1]: PermanentFailure("no such account", code="unknown_recipient"),
        },
    )
    now = at(MAILBOX_DAY, 8)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=now,
    )
    assert (rep["failed_retryable"], rep["failed_final"]) == (1, 1)
    # Too early: the backoff is not over.
    assert (
        dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters(tmp_path, mailbox=box),
            today=MAILBOX_DAY,
            now=now + timedelta(seconds=30),
        )
        == {}
    )
    rep2 = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=now + timedelta(hours=1),
    )
    assert rep2["sent"] == 1
    with session_scope(engine) as s:
        final = s.exec(select(Action).where(Action.key == keys[1])).one()
        assert (final.state, final.reason) == ("failed_final", "unknown_recipient")


def test_letters_at_renewal_and_an_invalid_address_is_reported_not_printed(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 5, ANCHOR, telephone=None, compte_ameli=False)
    with session_scope(engine) as s:
        p = s.exec(select(Person).order_by(Person.id)).first()  # type: ignore[arg-type]
        assert p is not None
        p.address_lines = [
            "M. X",
            "A LINE THAT IS FAR TOO LONG FOR ANY WINDOW ENVELOPE",
            "91000 EVRY",
        ]
    printer = CountingLetters(LocalLetters(tmp_path))
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="letter",
        adapters=adapters(tmp_path, letters=printer),
        today=ANCHOR,
        now=at(ANCHOR, 8),
    )
    assert rep["failed_final"] == 1 and rep["sent"] == len(printer.calls) - 1
    with session_scope(engine) as s:
        assert s.get(Person, p.id).address_invalid  # type: ignore[union-attr]


@pytest.mark.parametrize("channel", ["mailbox", "email", "letter"])
def test_nothing_due_nothing_sent(engine: Engine, tmp_path: Path, channel: str) -> None:
    setup(engine, 3, ANCHOR - timedelta(days=80))
    assert (
        dispatch(
            engine=engine,
            campaign=C,
            channel=channel,
            adapters=adapters(tmp_path),
            today=ANCHOR - timedelta(days=80),
            now=at(ANCHOR - timedelta(days=80), 8),
        )
        == {}
    )


def test_email_message_type_is_what_dispatch_builds() -> None:
    m = EmailMessage(key="k", to="a@b.c", subject="s", text="t")
    assert m.html is None


def test_a_mailbox_notice_goes_only_to_people_with_an_e_mail(
    engine: Engine, tmp_path: Path
) -> None:
    """The notice of a mailbox message is queued for a person with an e-mail on file and
    skipped, with its reason, for one without (known from the batch's own read of people)."""
    setup(engine, 6, MAILBOX_DAY, telephone=None)
    with session_scope(engine) as s:
        people = s.exec(select(Person).order_by(Person.id)).all()
        for p in people[::2]:
            p.email = None
        without = {p.id for p in people[::2]}
    dispatch(engine=engine, campaign=C, channel="mailbox", adapters=adapters(tmp_path),
             today=MAILBOX_DAY, now=at(MAILBOX_DAY, 10))  # fmt: skip
    with session_scope(engine) as s:
        notices = s.exec(select(Action).where(Action.channel == "email")).all()
        sent = {
            a.person_id
            for a in s.exec(select(Action).where(Action.channel == "mailbox"))
            if a.state == "sent"
        }
    assert {a.person_id for a in notices} == sent
    assert sent & without and sent - without  # some of each
    for a in notices:
        if a.person_id in without:
            assert (a.state, a.reason) == ("skipped", "no_email"), a
        else:
            assert a.state == "queued", a


def test_a_template_that_fails_for_one_person_fails_that_message_only(
    engine: Engine, tmp_path: Path
) -> None:
    """A trap the draft check cannot see (one name, built at run time) fails that person's message,
    finally and with the file and why; the rest of the batch goes out, and nothing is left
    `sending` to fail again every run."""
    import shutil

    setup(engine, 6, MAILBOX_DAY, telephone=None)
    with session_scope(engine) as s:
        queued = select(Person.nom).join(Action).where(Action.channel == "mailbox")
        name = s.exec(queued.order_by(Person.nom)).first()
    folder = tmp_path / "sophia"
    shutil.copytree(C.folder, folder)
    template = folder / "templates" / "mailbox_message.md.j2"
    template.write_text(
        template.read_text(encoding="utf-8")
        # A name built at run time: the check's reading of the text cannot see it.
        + f'{{% if person.nom == "{name}" %}}{{% set a = "__cla" ~ "ss__" %}}'
        + "{{ person.nom[a] }}{% endif %}\n",
        encoding="utf-8",
    )
    trapped = load_campaign(folder)
    box = CountingMailbox(LocalMailbox(tmp_path))
    rep = dispatch(
        engine=engine,
        campaign=trapped,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=at(MAILBOX_DAY, 8),
        batch_size=4,
    )
    assert rep.get("failed_final") == 1 and rep["sent"] == len(box.calls) >= 2, rep
    with session_scope(engine) as s:
        rows = s.exec(select(Action, Person).join(Person).where(Action.channel == "mailbox"))
        failed = [(a, p) for a, p in rows if a.state != "sent"]
    assert len(failed) == 1
    action, person = failed[0]
    assert (person.nom, action.state, action.reason) == (name, "failed_final", "template_error")
    assert action.error is not None and "mailbox_message.md.j2" in action.error
    assert "accès interdit à « __class__ »" in action.error and str(name) not in action.error
