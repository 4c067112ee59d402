"""The cascade planner: a member's state and a date in, the decisions due that day out.

Pure: no database, no clock. The tick feeds it what the ledger holds and writes back
what it returns; running it twice on the same state gives the same decisions, and the
ledger's idempotency keys make writing them twice harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from campaigns.clock import paris_today
from campaigns.definition.model import REACHED_OUTCOMES, CampaignDefinition, Step, parse_fact
from campaigns.definition.reasons import Reason, opposed_to
from campaigns.definition.vocabulary import ALL_CHANNELS, Channel
from campaigns.definition.windows import step_window as step_window  # re-exported
from campaigns.ledger.vocabulary import OPEN_STATES, SUCCESS_STATES, ActionState, MemberStatus


@dataclass(frozen=True)
class ActionView:
    """What the planner needs to know of an action already in the ledger."""

    step: str
    attempt: int
    state: str
    due_on: date
    outcome: str | None = None
    done_on: date | None = None
    callback_at: datetime | None = None
    reason: str | None = None
    read: bool = False  # a mailbox message the person opened


@dataclass(frozen=True)
class MemberState:
    """A member as the planner sees it."""

    anchor_date: date
    entered_on: date
    departement: str
    holdout: bool = False
    active: bool = True
    has_phone: bool = False
    has_compte_ameli: bool = False
    has_email: bool = False
    has_postal_address: bool = True
    opposed: frozenset[str] = frozenset()
    enrolled_on: date | None = None
    deceased: bool = False
    actions: Sequence[ActionView] = ()
    priority: bool = False


@dataclass(frozen=True)
class NewAction:
    """An action to put in the ledger."""

    step: str
    channel: str
    attempt: int
    due_on: date
    due_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Skip:
    """A step that will not be played for this member, and why."""

    step: str
    channel: str
    reason: str


@dataclass(frozen=True)
class Exit:
    """The member leaves the cascade."""

    status: str  # goal, exited, completed
    reason: str


@dataclass
class Plan:
    """What is due for a member on a day."""

    new_actions: list[NewAction] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    exit: Exit | None = None

    @property
    def empty(self) -> bool:
        return not self.new_actions and not self.skips and self.exit is None


AddWorkingDays = Callable[[date, int, str], date]

_REQUIREMENT_REASON = {
    "phone": Reason.NO_PHONE,
    "compte_ameli": Reason.NO_COMPTE_AMELI,
    "email": Reason.NO_EMAIL,
    "postal_address": Reason.NO_ADDRESS,  # the policy's code for the same fact
    "priority": Reason.NOT_PRIORITY,
    "reached": Reason.NOT_REACHED_BY_PHONE,
    "read": Reason.MAILBOX_NOT_READ,
    "sent": Reason.STEP_NOT_SENT,
}
# The reason a step is skipped when an `unless` fact holds.
_UNLESS_REASON = {
    "phone": Reason.HAS_PHONE,
    "compte_ameli": Reason.HAS_COMPTE_AMELI,
    "email": Reason.HAS_EMAIL,
    "postal_address": Reason.HAS_ADDRESS,
    "priority": Reason.IS_PRIORITY,
    "reached": Reason.REACHED_BY_PHONE,
    "read": Reason.MAILBOX_READ,
    "sent": Reason.STEP_SENT,
}


def campaign_ended(definition: CampaignDefinition, today: date) -> bool:
    """Whether the campaign's end date has passed."""
    return definition.dates.end is not None and today > definition.dates.end


def notice_decision(
    step: Step, *, has_email: bool, opposed: frozenset[str] | set[str], today: date
) -> NewAction | Skip:
    """The notice that follows a delivered step (e.g. the e-mail after a mailbox message)."""
    assert step.notify is not None
    notice = notice_step_id(step)
    if not has_email:
        return Skip(notice, step.notify.channel, Reason.NO_EMAIL)
    if Channel.EMAIL in opposed or ALL_CHANNELS in opposed:
        return Skip(notice, step.notify.channel, Reason.OPPOSED_EMAIL)
    return NewAction(notice, step.notify.channel, 1, today, None, f"{step.id}_sent")


def notice_step_id(step: Step) -> str:
    """The id of the notice that follows a step (e.g. the e-mail after a mailbox message)."""
    return f"{step.id}_notice"


def _step_fact(kind: str, actions: list[ActionView]) -> bool:
    """What an earlier step gave the member so far."""
    if kind == "reached":
        return any(a.outcome in REACHED_OUTCOMES for a in actions)
    if kind == "read":
        return any(a.read for a in actions)
    return any(a.state in SUCCESS_STATES for a in actions)  # sent


def holds(state: MemberState, fact: str, by_step: dict[str, list[ActionView]]) -> bool:
    """Whether a condition fact (`phone`, `priority`, `reached:call`…) holds for the member."""
    kind, ref = parse_fact(fact)
    if ref is not None:
        return _step_fact(kind, list(by_step.get(ref, ())))
    return {
        "phone": state.has_phone,
        "compte_ameli": state.has_compte_ameli,
        "email": state.has_email,
        "postal_address": state.has_postal_address,
        "priority": state.priority,
    }[kind]


def blocked_reason(
    state: MemberState, step: Step, by_step: dict[str, list[ActionView]] | None = None
) -> str | None:
    """Why the step cannot be played: a failing requirement, a holding `unless`, an opposition.

    Without `by_step` (a retry of a step already started) only contact facts are looked at:
    the other conditions were judged on the day of the first attempt.
    """
    facts = by_step if by_step is not None else {}
    for req in step.requires:
        if by_step is None and parse_fact(req)[0] not in _CONTACT:
            continue
        if not holds(state, req, facts):
            return _REQUIREMENT_REASON[parse_fact(req)[0]]
    for fact in step.unless if by_step is not None else ():
        if holds(state, fact, facts):
            return _UNLESS_REASON[parse_fact(fact)[0]]
    if step.channel in state.opposed:
        return opposed_to(step.channel)
    return None


_CONTACT = frozenset({"phone", "compte_ameli", "email", "postal_address"})


def _phone_next(
    step: Step,
    attempts: list[ActionView],
    window_end: date,
    state: MemberState,
    today: date,
    add_working_days: AddWorkingDays,
) -> tuple[NewAction | None, str | None, Exit | None]:
    """After the last call attempt: the next attempt, or why the step is over, or an exit."""
    last = attempts[-1]
    if last.state in OPEN_STATES:
        return None, None, None
    if last.state == ActionState.SKIPPED:
        return None, last.reason or Reason.SKIPPED, None
    if last.state not in SUCCESS_STATES or last.outcome is None:
        return None, f"call_{last.state}", None
    rule = step.outcomes.get(last.outcome)  # type: ignore[call-overload]
    if rule is None:
        return None, f"unmapped_outcome_{last.outcome}", None
    if rule.effect == "goal":
        return None, None, Exit(MemberStatus.GOAL, f"outcome_{last.outcome}")
    if rule.effect == "exit":
        return None, None, Exit(MemberStatus.EXITED, f"outcome_{last.outcome}")
    if rule.effect == "end_step":
        return None, f"outcome_{last.outcome}", None
    blocked = blocked_reason(state, step)
    if blocked:
        return None, blocked, None
    nxt, over = _call_again(step, attempts, rule.effect, window_end, state, today, add_working_days)
    return nxt, over, None


def _call_again(
    step: Step,
    attempts: list[ActionView],
    effect: str,
    window_end: date,
    state: MemberState,
    today: date,
    add_working_days: AddWorkingDays,
) -> tuple[NewAction | None, str | None]:
    """The callback asked for, or the next try after the spacing, within the step's window."""
    last = attempts[-1]
    done_on = last.done_on or last.due_on
    callbacks = sum(1 for a in attempts if a.outcome == "callback")
    if effect == "callback" and last.callback_at and callbacks <= step.attempts.max_callbacks:
        due = max(paris_today(last.callback_at), today)
        if due > window_end:
            return None, Reason.CALLBACK_AFTER_WINDOW
        return (
            NewAction(
                step.id,
                step.channel,
                last.attempt + 1,
                due,
                last.callback_at,
                Reason.CALLBACK_REQUESTED,
            ),
            None,
        )
    # retry (or a callback beyond the callbacks allowed): attempts that were not callbacks count.
    tries = sum(1 for a in attempts if a.outcome != "callback")
    if tries >= step.attempts.max:
        return None, Reason.MAX_ATTEMPTS_REACHED
    due = max(
        add_working_days(done_on, step.attempts.spacing_working_days, state.departement), today
    )
    if due > window_end:
        return None, Reason.NO_TIME_LEFT_IN_WINDOW
    return (
        NewAction(
            step.id, step.channel, last.attempt + 1, due, None, f"retry_after_{last.outcome}"
        ),
        None,
    )


def _exit_now(state: MemberState, today: date) -> Exit | None:
    """Whether the member leaves before any step is looked at (goal reached, death, opposition)."""
    if state.enrolled_on is not None and state.enrolled_on <= today:
        return Exit(MemberStatus.GOAL, Reason.ENROLLED)
    if state.deceased:
        return Exit(MemberStatus.EXITED, Reason.DECEASED)
    if ALL_CHANNELS in state.opposed:
        return Exit(MemberStatus.EXITED, Reason.OPPOSED)
    return None


def _ended(definition: CampaignDefinition, today: date) -> Exit | None:
    """Past the campaign's end every member leaves (the tick does it for all at once)."""
    if campaign_ended(definition, today):
        return Exit(MemberStatus.COMPLETED, Reason.CAMPAIGN_ENDED)
    return None


def _first_attempt(
    step: Step,
    window: tuple[date, date],
    state: MemberState,
    by_step: dict[str, list[ActionView]],
    today: date,
    out: Plan,
) -> bool:
    """A step not tried yet: due, skipped (window passed, blocked) or not started; whether it
    still has something ahead. Its conditions are judged today, the day it would be due."""
    start, end = window
    if today < start:
        return True
    if today > end:
        out.skips.append(Skip(step.id, step.channel, Reason.WINDOW_PASSED))
        return False
    blocked = blocked_reason(state, step, by_step)
    if blocked:
        out.skips.append(Skip(step.id, step.channel, blocked))
        return False
    out.new_actions.append(NewAction(step.id, step.channel, 1, today, None, Reason.DUE))
    return True


def _after_sent(
    step: Step,
    by_step: dict[str, list[ActionView]],
    state: MemberState,
    today: date,
    out: Plan,
) -> bool:
    """A dispatched step already tried: its notice once it went out; whether it still waits."""
    last = by_step[step.id][-1]
    if last.state in OPEN_STATES:
        return True
    if step.notify and last.state in SUCCESS_STATES:
        notice = notice_step_id(step)
        if notice not in by_step:
            decided = notice_decision(
                step, has_email=state.has_email, opposed=state.opposed, today=today
            )
            if isinstance(decided, Skip):
                out.skips.append(decided)
                return False
            out.new_actions.append(decided)
            return True
        return by_step[notice][-1].state in OPEN_STATES
    return False


def plan(
    state: MemberState,
    today: date,
    definition: CampaignDefinition,
    add_working_days: AddWorkingDays,
) -> Plan:
    """The decisions due for a member today."""
    out = Plan()
    if not state.active:
        return out
    out.exit = _exit_now(state, today) or _ended(definition, today)
    if out.exit is not None:
        return out

    windows = {s.id: step_window(definition, s, state.anchor_date) for s in definition.cascade}
    last_day = max(end for _, end in windows.values())
    if state.holdout:
        if today > last_day:
            out.exit = Exit(MemberStatus.COMPLETED, Reason.HOLDOUT_WINDOW_CLOSED)
        return out

    by_step: dict[str, list[ActionView]] = {}
    for a in sorted(state.actions, key=lambda a: a.attempt):
        by_step.setdefault(a.step, []).append(a)

    finished = True
    for step in definition.cascade:
        attempts = by_step.get(step.id, [])
        if not attempts:
            pending = _first_attempt(step, windows[step.id], state, by_step, today, out)
        elif step.channel == "phone":
            end = windows[step.id][1]
            nxt, over, exit_ = _phone_next(step, attempts, end, state, today, add_working_days)
            if exit_ is not None:
                # An outcome that ends the campaign for the member: nothing else is planned.
                return Plan(exit=exit_)
            if nxt is not None:
                out.new_actions.append(nxt)
            pending = over is None
        else:
            pending = _after_sent(step, by_step, state, today, out)
        finished = finished and not pending

    if finished and today > last_day:
        out.exit = Exit(MemberStatus.COMPLETED, Reason.CASCADE_FINISHED)
    return out
