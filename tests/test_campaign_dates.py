"""Campaign dates and anchors in the ledger: who is admitted when, with which anchor date,
and what the campaign's end does to queued actions and members (both backends)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.calls.queue import claim_next
from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.cascade.membership import admit_targets, anchor_date, last_birthday
from campaigns.cascade.tick import action_views, tick, uses_reads
from campaigns.definition.catalog import load_campaign
from campaigns.definition.model import (
    DEFINITIONS_DIR,
    Anchor,
    CampaignDefinition,
    Dates,
    parse_definition,
)
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Member, MemberEvent, ProviderEvent
from campaigns.ledger.registry import register_campaign
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox
from console.demo.simulator import at
from tests.factories import population

SOPHIA = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
LAUNCH, END = date(2026, 10, 14), date(2027, 1, 31)


def shaped(kind: str, *, end: date | None = END, cid: str = "vague") -> CampaignDefinition:
    """Sophia's cascade under another id, anchor and dates (no validation lists)."""
    return SOPHIA.model_copy(
        update={
            "id": cid,
            "anchor": Anchor(kind=kind),  # type: ignore[arg-type]
            "dates": Dates(start=LAUNCH, end=end),
        }
    )


def test_anchor_date_by_kind() -> None:
    row = SimpleNamespace(ald_end_date=date(2026, 12, 20), birth_date=date(1956, 11, 1))
    today = date(2026, 10, 20)
    assert anchor_date(SOPHIA, row, today) == date(2026, 12, 20)
    assert anchor_date(shaped("wave"), row, date(2026, 10, 1)) == LAUNCH
    assert anchor_date(shaped("wave"), row, today) == today  # entered after the launch
    assert anchor_date(shaped("entry"), row, today) == today
    assert anchor_date(shaped("birthday"), row, today) == date(2025, 11, 1)
    assert last_birthday(date(1956, 10, 1), today) == date(2026, 10, 1)
    assert last_birthday(date(1956, 10, 1), date(2026, 10, 1)) == date(2026, 10, 1)


def _admit(engine: Engine, d: CampaignDefinition, day: date, n: int = 3) -> dict[str, int]:
    targets, people = population(n, anchor=date(2026, 12, 20))
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True)
        return admit_targets(session=s, definition=d, targets=targets, people=people, today=day)


def test_nobody_is_admitted_outside_the_campaign_dates(engine: Engine) -> None:
    d = shaped("wave")
    before = _admit(engine, d, LAUNCH - timedelta(days=1))
    assert before["admitted"] == 0 and before["not_admitted_outside_dates"] == 3
    after = _admit(engine, d, END + timedelta(days=1))
    assert after["admitted"] == 0 and after["not_admitted_outside_dates"] == 3
    first_day = _admit(engine, d, LAUNCH)
    assert first_day["admitted"] == 3 and "not_admitted_outside_dates" not in first_day
    with session_scope(engine) as s:
        assert {m.anchor_date for m in s.exec(select(Member))} == {LAUNCH}


def test_a_later_renewal_ends_only_renewal_anchored_members(engine: Engine) -> None:
    d = shaped("entry", end=None)
    day = date(2026, 11, 2)
    _admit(engine, d, day)
    targets, people = population(3, anchor=date(2027, 6, 1))  # the renewal moved
    with session_scope(engine) as s:
        counts = admit_targets(
            session=s, definition=d, targets=targets, people=people, today=day + timedelta(1)
        )
    assert counts["left"] == 0
    with session_scope(engine) as s:
        assert {(m.status, m.anchor_date) for m in s.exec(select(Member))} == {("active", day)}


def test_the_end_cancels_queued_actions_and_lets_members_go(engine: Engine) -> None:
    d = shaped("wave")
    _admit(engine, d, LAUNCH)
    # The letter (day 0 to 30) is queued on the launch day for every member.
    tick(engine=engine, definition=d, today=LAUNCH)
    with session_scope(engine) as s:
        queued = s.exec(select(Action).where(Action.state == "queued")).all()
        assert queued
        active = len(s.exec(select(Member).where(Member.status == "active")).all())
        assert active == 3
    ended = tick(engine=engine, definition=d, today=END + timedelta(days=1))
    assert ended["left_campaign_ended"] == 3
    assert ended["cancelled_campaign_ended"] == len(queued)
    with session_scope(engine) as s:
        assert {(a.state, a.reason) for a in s.exec(select(Action))} >= {
            ("cancelled", "campaign_ended")
        }
        assert not s.exec(select(Action).where(Action.state == "queued")).all()
        assert {(m.status, m.status_reason) for m in s.exec(select(Member))} == {
            ("completed", "campaign_ended")
        }
        left = s.exec(select(MemberEvent).where(col(MemberEvent.kind) == "left")).all()
        assert len(left) == 3 and {e.detail["reason"] for e in left} == {"campaign_ended"}
    again = tick(engine=engine, definition=d, today=END + timedelta(days=2))
    assert again["left_campaign_ended"] == 0 and again["cancelled_campaign_ended"] == 0


def test_dispatch_never_sends_past_the_end(engine: Engine, tmp_path: Path) -> None:
    d = shaped("wave")
    campaign = replace(load_campaign("sophia-ald8"), definition=d)
    _admit(engine, d, LAUNCH)
    tick(engine=engine, definition=d, today=LAUNCH)
    with session_scope(engine) as s:
        queued = len(s.exec(select(Action).where(Action.channel == "letter")).all())
    assert queued >= 1  # the holdout gets none
    letters = LocalLetters(tmp_path)
    box = Adapters(mailbox=LocalMailbox(tmp_path), email=LocalEmail(tmp_path), letters=letters)
    # No tick after the end yet: what was queued is still there, and must not go out.
    after = END + timedelta(days=1)
    counts = dispatch(engine=engine, campaign=campaign, channel="letter", adapters=box, today=after)
    assert counts.get("sent", 0) == 0 and counts["cancelled_campaign_ended"] == queued
    with session_scope(engine) as s:
        assert {
            (a.state, a.reason) for a in s.exec(select(Action).where(Action.channel == "letter"))
        } == {("cancelled", "campaign_ended")}


def test_the_tick_sees_mailbox_reads(engine: Engine) -> None:
    d = shaped("wave")
    _admit(engine, d, LAUNCH)
    tick(engine=engine, definition=d, today=LAUNCH)
    with session_scope(engine) as s:
        box = s.exec(select(Action).where(Action.channel == "mailbox")).first()
        assert box is not None
        box.state = "delivered"
        s.add(
            ProviderEvent(
                provider="mailbox",
                event_id="read:x",
                kind="read",
                ref=box.key,
                received_at=at(LAUNCH, 12),
            )
        )
        member_id = box.member_id
    with session_scope(engine) as s:
        views = action_views(s, [member_id], reads=True)[member_id]
        assert [v.read for v in views if v.step == "mailbox"] == [True]
        assert not any(v.read for v in action_views(s, [member_id])[member_id])
    assert uses_reads(d) is False


def test_no_call_is_offered_past_the_end(engine: Engine) -> None:
    call = SOPHIA.cascade[0].model_copy(update={"start_days": 0, "end_days": 30})
    d = shaped("wave").model_copy(update={"cascade": [call, *SOPHIA.cascade[1:]]})
    _admit(engine, d, LAUNCH, n=6)
    tick(engine=engine, definition=d, today=LAUNCH)
    with session_scope(engine) as s:
        assert s.exec(select(Action).where(Action.channel == "phone")).all()
        # No tick since the end: the calls are still queued, yet none is offered.
        after = claim_next(
            session=s, adviser="a", now=at(END + timedelta(days=1), 11), definitions={d.id: d}
        )
        assert after is None
        during = claim_next(session=s, adviser="a", now=at(LAUNCH, 11), definitions={d.id: d})
        assert during is not None
