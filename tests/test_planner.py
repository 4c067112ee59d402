"""The cascade planner: pure rules on small inline cases, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.cascade.planner import ActionView, MemberState, plan
from campaigns.definition.model import DEFINITIONS_DIR, parse_definition
from campaigns.policy.calendar import add_working_days

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
ANCHOR = date(2026, 6, 15)  # a Monday
CALL_START = ANCHOR - timedelta(days=60)  # 2026-04-16, a Thursday


def member(**kw: object) -> MemberState:
    base: dict[str, object] = dict(
        anchor_date=ANCHOR,
        entered_on=ANCHOR - timedelta(days=90),
        departement="91",
        has_phone=True,
        has_compte_ameli=True,
        has_email=True,
    )
    base.update(kw)
    return MemberState(**base)  # type: ignore[arg-type]


def call(
    attempt: int,
    outcome: str | None,
    done_on: date,
    state: str = "done",
    callback_at: datetime | None = None,
) -> ActionView:
    return ActionView("call", attempt, state, done_on, outcome, done_on, callback_at)


def run(state: MemberState, today: date):  # type: ignore[no-untyped-def]
    return plan(state, today, D, add_working_days)


@pytest.mark.parametrize(
    ("today", "expected_steps"),
    [
        (ANCHOR - timedelta(days=61), []),
        (CALL_START, ["call"]),
    ],
)
def test_call_starts_sixty_days_before_renewal(today: date, expected_steps: list[str]) -> None:
    p = run(member(), today)
    assert [a.step for a in p.new_actions] == expected_steps
    assert not p.skips


def test_no_phone_skips_the_call_with_a_reason() -> None:
    p = run(member(has_phone=False), CALL_START)
    assert [(s.step, s.reason) for s in p.skips] == [("call", "no_phone")]


def test_phone_opposition_skips_the_call() -> None:
    p = run(member(opposed=frozenset({"phone"})), CALL_START)
    assert [(s.step, s.reason) for s in p.skips] == [("call", "opposed_phone")]


@pytest.mark.parametrize(
    ("kw", "status", "reason"),
    [
        ({"enrolled_on": CALL_START}, "goal", "enrolled"),
        ({"deceased": True}, "exited", "deceased"),
        ({"opposed": frozenset({"all"})}, "exited", "opposed"),
    ],
)
def test_situations_that_end_the_cascade(kw: dict[str, object], status: str, reason: str) -> None:
    p = run(member(**kw), CALL_START)
    assert p.exit is not None and (p.exit.status, p.exit.reason) == (status, reason)
    assert not p.new_actions


def test_enrolment_in_the_future_does_not_end_the_cascade_yet() -> None:
    p = run(member(enrolled_on=CALL_START + timedelta(days=3)), CALL_START)
    assert p.exit is None


def test_no_answer_retries_two_working_days_later() -> None:
    friday = date(2026, 4, 17)
    p = run(member(actions=[call(1, "no_answer", friday)]), friday + timedelta(days=1))
    assert [(a.step, a.attempt, a.due_on) for a in p.new_actions] == [
        ("call", 2, date(2026, 4, 21))  # Mon 20 and Tue 21 are the two working days
    ]


def test_retry_skips_public_holidays() -> None:
    # Thursday 30 April 2026: Friday 1 May (Labour Day) does not count → Mon 4, Tue 5 May.
    thu = date(2026, 4, 30)
    p = run(member(actions=[call(1, "busy", thu)]), thu)
    assert p.new_actions[0].due_on == date(2026, 5, 5)


def test_three_unanswered_calls_end_the_step() -> None:
    d1, d2, d3 = date(2026, 4, 16), date(2026, 4, 20), date(2026, 4, 22)
    acts = [call(1, "no_answer", d1), call(2, "voicemail", d2), call(3, "busy", d3)]
    p = run(member(actions=acts), d3 + timedelta(days=1))
    assert [a for a in p.new_actions if a.step == "call"] == []


def test_callback_is_scheduled_at_the_requested_time_without_using_an_attempt() -> None:
    d1 = date(2026, 4, 16)
    cb = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
    acts = [call(1, "no_answer", d1), call(2, "callback", date(2026, 4, 17), callback_at=cb)]
    p = run(member(actions=acts), date(2026, 4, 17))
    assert [(a.attempt, a.due_on, a.due_at) for a in p.new_actions] == [(3, cb.date(), cb)]


def test_enrolled_on_call_is_the_goal() -> None:
    p = run(member(actions=[call(1, "enrolled_on_call", CALL_START)]), CALL_START)
    assert p.exit is not None and p.exit.status == "goal"


def test_objection_exits() -> None:
    p = run(member(actions=[call(1, "objects", CALL_START)]), CALL_START)
    assert p.exit is not None and (p.exit.status, p.exit.reason) == ("exited", "outcome_objects")


def test_waiting_call_blocks_nothing_else_but_plans_no_second_attempt() -> None:
    p = run(
        member(actions=[call(1, None, CALL_START, state="queued")]), CALL_START + timedelta(days=20)
    )
    assert [a.step for a in p.new_actions] == ["mailbox"]


def test_mailbox_needs_a_compte_ameli() -> None:
    day = ANCHOR - timedelta(days=45)
    refused = [call(1, "refused", CALL_START)]
    assert [a.step for a in run(member(actions=refused), day).new_actions] == ["mailbox"]
    p = run(member(actions=refused, has_compte_ameli=False), day)
    assert [(s.step, s.reason) for s in p.skips] == [("mailbox", "no_compte_ameli")]


def test_mailbox_notice_follows_a_sent_message() -> None:
    day = ANCHOR - timedelta(days=44)
    acts = [call(1, "refused", CALL_START), ActionView("mailbox", 1, "sent", day, done_on=day)]
    p = run(member(actions=acts), day)
    assert [(a.step, a.channel) for a in p.new_actions] == [("mailbox_notice", "email")]
    p = run(member(actions=acts, has_email=False), day)
    assert [(s.step, s.reason) for s in p.skips] == [("mailbox_notice", "no_email")]


def test_letter_at_renewal_even_without_phone() -> None:
    p = run(member(has_phone=False, has_compte_ameli=False), ANCHOR)
    assert [a.step for a in p.new_actions] == ["letter"]
    assert {s.step for s in p.skips} == {"call", "mailbox"}


def test_late_entry_skips_steps_whose_window_passed() -> None:
    p = run(member(entered_on=ANCHOR + timedelta(days=1)), ANCHOR + timedelta(days=1))
    assert ("call", "window_passed") in [(s.step, s.reason) for s in p.skips]
    assert [a.step for a in p.new_actions] == ["mailbox", "letter"]


def test_holdout_is_never_contacted_and_completes_after_the_last_window() -> None:
    for offset in range(-90, 31, 7):
        assert run(member(holdout=True), ANCHOR + timedelta(days=offset)).empty
    p = run(member(holdout=True), ANCHOR + timedelta(days=31))
    assert p.exit is not None and p.exit.reason == "holdout_window_closed"


def test_cascade_completes_once_every_step_is_settled_and_windows_closed() -> None:
    acts = [
        call(1, "refused", CALL_START),
        ActionView("mailbox", 1, "sent", ANCHOR - timedelta(days=45)),
        ActionView("mailbox_notice", 1, "sent", ANCHOR - timedelta(days=44)),
        ActionView("letter", 1, "sent", ANCHOR),
    ]
    assert run(member(actions=acts), ANCHOR + timedelta(days=30)).exit is None
    p = run(member(actions=acts), ANCHOR + timedelta(days=31))
    assert p.exit is not None and p.exit.reason == "cascade_finished"


OUTCOMES = [
    "no_answer",
    "busy",
    "voicemail",
    "refused",
    "will_enrol_online",
    "wrong_number",
    "callback",
]


@settings(max_examples=200, deadline=None)
@given(
    offset=st.integers(min_value=-100, max_value=40),
    has_phone=st.booleans(),
    has_ameli=st.booleans(),
    holdout=st.booleans(),
    outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=4),
)
def test_planner_properties(
    offset: int, has_phone: bool, has_ameli: bool, holdout: bool, outcomes: list[str]
) -> None:
    today = ANCHOR + timedelta(days=offset)
    acts = []
    day = CALL_START
    for i, o in enumerate(outcomes, start=1):
        if day > today:
            break
        cb = datetime(day.year, day.month, day.day, 12, tzinfo=UTC) + timedelta(days=1)
        acts.append(call(i, o, day, callback_at=cb if o == "callback" else None))
        day = add_working_days(day, 2, "91")
    state = member(has_phone=has_phone, has_compte_ameli=has_ameli, holdout=holdout, actions=acts)
    p1, p2 = run(state, today), run(state, today)
    # Deterministic: the same state and day give the same plan.
    assert (p1.new_actions, p1.skips, p1.exit) == (p2.new_actions, p2.skips, p2.exit)
    if holdout:
        assert not p1.new_actions and not p1.skips
    for a in p1.new_actions:
        step = D.step(a.step) if a.step != "mailbox_notice" else None
        # Nothing is planned outside its step's window, nor in the past.
        assert a.due_on >= today
        if step is not None:
            assert a.due_on <= ANCHOR + timedelta(days=step.end_days)
            assert a.due_on >= ANCHOR + timedelta(days=step.start_days)
        if a.channel == "phone":
            assert has_phone
            assert sum(1 for x in acts if x.outcome != "callback") <= D.step("call").attempts.max
        if a.channel == "mailbox":
            assert has_ameli
    # One decision per step at most.
    steps = [a.step for a in p1.new_actions] + [s.step for s in p1.skips]
    assert len(steps) == len(set(steps))
