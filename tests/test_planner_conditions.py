"""The planner on conditional steps, campaign dates and bounded windows (inline campaigns)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from campaigns.cascade.planner import ActionView, MemberState, Plan, plan, step_window
from campaigns.definition.model import CampaignDefinition, parse_definition
from campaigns.policy.calendar import add_working_days

OUTCOMES = """\
    outcomes:
      enrolled_on_call: {effect: goal}
      will_enrol_online: {effect: end_step}
      refused: {effect: end_step}
      callback: {effect: callback}
      no_answer: {effect: retry}
      busy: {effect: retry}
      voicemail: {effect: retry}
      wrong_number: {effect: end_step}
      deceased: {effect: exit}
      objects: {effect: exit}
"""

# mt-ald's shape: a call from day 0 to 21, a mailbox message on day 14 unless reached by
# phone, a letter on day 35 unless the message was read; a priority-only call in December.
CAMPAIGN = f"""\
id: essai
name: "essai"
dates: {{start: 2026-10-01, end: 2027-01-31}}
anchor: {{kind: entry}}
goal: {{programme: sophia}}
targeting:
  horizon_days: 90  # optional once the targeting vocabulary lands
  criteria: [{{kind: alive}}]
cascade:
  - id: call
    channel: phone
    start_days: 0
    end_days: 21
    requires: [phone]
    template: c.j2
{OUTCOMES}
  - id: mailbox
    channel: mailbox
    start_days: 14
    end_days: 20
    requires: [compte_ameli]
    unless: [reached:call]
    template: m.j2
  - id: letter
    channel: letter
    start_days: 35
    end_days: 45
    requires: [postal_address]
    unless: [read:mailbox]
    template: l.j2
  - id: letter_no_account
    channel: letter
    start_days: 35
    end_days: 45
    unless: [compte_ameli]
    template: l.j2
  - id: late_call
    channel: phone
    start_days: 0
    not_before: 2026-12-01
    requires: [phone, priority]
    unless: [sent:letter]
    template: c.j2
    attempts: {{max: 2}}
{OUTCOMES}
presentation:
  sender: "Assurance Maladie"
"""

ENTRY = date(2026, 10, 14)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> CampaignDefinition:
    path: Path = tmp_path_factory.mktemp("c") / "campaign.yaml"
    path.write_text(CAMPAIGN, encoding="utf-8")
    return parse_definition(path)


def member(**kw: object) -> MemberState:
    base: dict[str, object] = dict(
        anchor_date=ENTRY,
        entered_on=ENTRY,
        departement="75",
        has_phone=True,
        has_compte_ameli=True,
        has_email=True,
    )
    base.update(kw)
    return MemberState(**base)  # type: ignore[arg-type]


def run(d: CampaignDefinition, state: MemberState, today: date) -> Plan:
    return plan(state, today, d, add_working_days)


def decisions(p: Plan, step: str) -> list[tuple[str, str]]:
    return [("due", a.reason) for a in p.new_actions if a.step == step] + [
        ("skip", s.reason) for s in p.skips if s.step == step
    ]


def test_mailbox_is_skipped_when_reached_by_phone(d: CampaignDefinition) -> None:
    day = ENTRY + timedelta(days=14)
    reached = ActionView("call", 1, "done", ENTRY, "refused", ENTRY)
    assert decisions(run(d, member(actions=[reached]), day), "mailbox") == [
        ("skip", "reached_by_phone")
    ]
    unanswered = ActionView("call", 1, "done", ENTRY, "no_answer", ENTRY)
    assert decisions(run(d, member(actions=[unanswered]), day), "mailbox") == [("due", "due")]


def _sent_mailbox(read: bool) -> list[ActionView]:
    day = ENTRY + timedelta(days=14)
    return [
        ActionView("call", 1, "done", ENTRY, "no_answer", ENTRY),
        ActionView("mailbox", 1, "delivered", day, None, day, read=read),
    ]


def test_letter_is_skipped_when_the_mailbox_message_was_read(d: CampaignDefinition) -> None:
    day = ENTRY + timedelta(days=35)
    assert decisions(run(d, member(actions=_sent_mailbox(True)), day), "letter") == [
        ("skip", "mailbox_read")
    ]
    assert decisions(run(d, member(actions=_sent_mailbox(False)), day), "letter") == [
        ("due", "due")
    ]


def test_letter_goes_to_people_without_a_compte_ameli(d: CampaignDefinition) -> None:
    day = ENTRY + timedelta(days=35)
    assert decisions(run(d, member(has_compte_ameli=False), day), "letter_no_account") == [
        ("due", "due")
    ]
    assert decisions(run(d, member(actions=_sent_mailbox(False)), day), "letter_no_account") == [
        ("skip", "has_compte_ameli")
    ]


def test_late_call_only_for_priority_people_and_not_before_its_date(
    d: CampaignDefinition,
) -> None:
    assert decisions(run(d, member(priority=True), date(2026, 11, 30)), "late_call") == []
    assert decisions(run(d, member(priority=True), date(2026, 12, 1)), "late_call") == [
        ("due", "due")
    ]
    assert decisions(run(d, member(priority=False), date(2026, 12, 1)), "late_call") == [
        ("skip", "not_priority")
    ]


def test_windows_are_bounded_by_not_before_and_the_campaign_end(d: CampaignDefinition) -> None:
    late = d.step("late_call")
    assert step_window(d, late, ENTRY) == (date(2026, 12, 1), date(2027, 1, 31))
    # A relative window running past the end is cut at the end.
    assert step_window(d, d.step("letter"), date(2027, 1, 1)) == (
        date(2027, 2, 5),
        date(2027, 1, 31),
    )
    p = run(d, member(anchor_date=date(2027, 1, 1)), date(2027, 1, 31))
    assert ("skip", "window_passed") not in decisions(p, "letter")  # not yet due, not passed
    assert step_window(d, d.step("call"), date(2027, 1, 20))[1] == date(2027, 1, 31)


def test_after_the_end_the_member_leaves(d: CampaignDefinition) -> None:
    p = run(d, member(), date(2027, 2, 1))
    assert p.exit is not None and (p.exit.status, p.exit.reason) == ("completed", "campaign_ended")
    assert run(d, member(), date(2027, 1, 31)).exit is None


def test_a_retry_does_not_judge_the_conditions_again(d: CampaignDefinition) -> None:
    # Priority was judged on the first attempt; a retry only needs the phone.
    first = ActionView("late_call", 1, "done", date(2026, 12, 1), "no_answer", date(2026, 12, 1))
    p = run(d, member(priority=False, actions=[first]), date(2026, 12, 2))
    assert [(a.step, a.attempt) for a in p.new_actions if a.step == "late_call"] == [
        ("late_call", 2)
    ]
