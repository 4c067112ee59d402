"""The mailbox's read status: polled in batches, each read recorded once, shown by `why`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.app.stages import mailbox_reads_stage
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, MemberEvent, Person
from campaigns.measurement.why import why
from channels.base import TemporaryFailure
from channels.mailbox import LocalMailbox
from console.demo.simulator import at
from tests.test_dispatch import MAILBOX_DAY, C, adapters, setup


class _Down(LocalMailbox):
    def read_status(self, provider_id: str) -> str:
        raise TemporaryFailure("mailbox service down")


def test_reads_are_recorded_once_and_told_by_why(engine: Engine, tmp_path: Path) -> None:
    from campaigns.cascade.dispatch import dispatch

    setup(engine, 4, MAILBOX_DAY, telephone=None)
    box = LocalMailbox(tmp_path)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="mailbox",
        adapters=adapters(tmp_path, mailbox=box),
        today=MAILBOX_DAY,
        now=at(MAILBOX_DAY, 8),
    )
    with session_scope(engine) as s:
        sent = list(s.exec(select(Action).where(Action.channel == "mailbox")))
    assert rep["sent"] == len(sent) >= 2
    box.mark_read(sent[0].provider_id or "")

    down = mailbox_reads_stage(engine=engine, campaign=C, gateway=_Down(tmp_path), day=MAILBOX_DAY)
    assert down == {"unavailable": len(sent)}
    first = mailbox_reads_stage(
        engine=engine, campaign=C, gateway=box, day=MAILBOX_DAY, batch_size=1
    )
    assert first == {"read": 1, "unread": len(sent) - 1}
    again = mailbox_reads_stage(engine=engine, campaign=C, gateway=box, day=MAILBOX_DAY)
    assert again == {"unread": len(sent) - 1}  # the read one is not asked about again

    with session_scope(engine) as s:
        reads = list(s.exec(select(MemberEvent).where(MemberEvent.kind == "mailbox_read")))
        assert [e.member_id for e in reads] == [sent[0].member_id]
        p = s.get(Person, sent[0].person_id)
        assert p is not None
        story = why(
            session=s, campaign_id=C.definition.id, ben_nir_psa=p.ben_nir_psa, ben_rng_gem=1
        )
    assert any("read in the ameli account" in line for _, line in story.lines)
