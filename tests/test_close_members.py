"""Closing many members at once (`close_members`): the same facts as one by one, both backends."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.ledger.db import session_scope
from campaigns.ledger.members import close_members
from campaigns.ledger.models import Action, Member, MemberEvent
from console.demo.simulator import at
from tests.test_dispatch import MAILBOX_DAY, D, setup


def test_closing_many_members_cancels_their_queued_actions_once(engine: Engine) -> None:
    setup(engine, 12, MAILBOX_DAY, telephone=None)
    now = at(MAILBOX_DAY, 9)
    with session_scope(engine) as s:
        members = list(s.exec(select(Member).where(Member.campaign_id == D.id)))
        active = {m.id for m in members if m.status == "active"}
        with_actions = {a.member_id for a in s.exec(select(Action)) if a.member_id in active}
        # Those with actions first: the ones closed below all have some.
        ids = sorted(with_actions) + sorted(active - with_actions)
        assert len(with_actions) >= 6
        already = ids[0]
        s.get_one(Member, already).status = "opted_out"
        queued = {
            a.id: a.member_id
            for a in s.exec(select(Action).where(Action.state == "queued"))
            if a.member_id in ids
        }
        sent_one = next(a for a in s.exec(select(Action)) if a.member_id == ids[1])
        sent_one.state, sent_one.claimed_by = "sent", "x"
        queued.pop(sent_one.id, None)
        claimed = next(a for a in s.exec(select(Action)) if a.member_id == ids[2])
        claimed.state, claimed.claimed_by, claimed.lease_until = "queued", "adv", now
        queued[claimed.id] = ids[2]
    targets = ids[:6]
    rest = ids[6:]
    with session_scope(engine) as s:
        n = close_members(
            session=s,
            member_ids=targets,
            status="goal",
            reason="goal_observed",
            today=MAILBOX_DAY,
            source="test",
            now=now,
        )
    assert n == len(targets) - 1  # the opted-out member is not closed again
    with session_scope(engine) as s:
        status = {m.id: m.status for m in s.exec(select(Member))}
        assert status[already] == "opted_out"
        assert {status[i] for i in targets if i != already} == {"goal"}
        assert {status[i] for i in rest} <= {"active"}
        events = list(s.exec(select(MemberEvent).where(MemberEvent.kind == "left")))
        assert Counter(e.member_id for e in events) == Counter(i for i in targets if i != already)
        assert {(e.on, e.detail["reason"], e.detail["source"]) for e in events} == {
            (MAILBOX_DAY, "goal_observed", "test")
        }
        actions = {a.id: a for a in s.exec(select(Action))}
        for aid, mid in queued.items():
            a = actions[aid]
            if mid in targets and mid != already:
                assert (a.state, a.reason, a.claimed_by, a.lease_until) == (
                    "cancelled",
                    "member_goal_observed",
                    None,
                    None,
                )
            else:
                assert a.state == "queued"
        assert actions[sent_one.id].state == "sent"
        assert actions[sent_one.id].claimed_by == "x"  # not queued: untouched
    with session_scope(engine) as s:
        again = close_members(
            session=s,
            member_ids=targets,
            status="goal",
            reason="goal_observed",
            today=MAILBOX_DAY + timedelta(days=1),
            source="test",
            now=now,
        )
        left = s.exec(select(MemberEvent).where(col(MemberEvent.kind) == "left")).all()
    assert again == 0 and len(left) == len(targets) - 1
