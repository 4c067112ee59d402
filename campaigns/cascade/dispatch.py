"""Channel dispatch: drain the ledger's due actions for one channel, in batches, exactly once.

An action is marked `sending` (and committed) before its provider is called; the provider
is called with the action's idempotency key, so a crash between the call and the write of
the result is repaired by calling again with the same key, which the adapters absorb.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from campaigns.cascade.planner import (
    ActionView,
    MemberState,
    Skip,
    blocked_reason,
    campaign_ended,
    notice_decision,
    step_window,
)
from campaigns.cascade.sending import (
    Claimed,
    MemberView,
    PersonView,
    claim_rows,
    due_actions,
    member_people,
    record_cancelled,
    record_retryable,
    record_sent,
    tried_channels,
)
from campaigns.cascade.tick import action_views, uses_reads
from campaigns.clock import utcnow
from campaigns.definition.catalog import Campaign
from campaigns.definition.jinja_fr import jinja_message_fr
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.reasons import Reason
from campaigns.definition.rendering import (
    build_context,
    merge_fields,
    merge_values,
    reads,
    render_key,
    render_message,
)
from campaigns.definition.vocabulary import ALL_CHANNELS, Channel
from campaigns.ledger.actions import ActionRow, action_key, insert_actions
from campaigns.ledger.db import session_scope
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.models import (
    ACTIVE,
    FAILED_FINAL,
    QUEUED,
    SKIPPED,
    Action,
    Member,
    MemberEvent,
    Person,
)
from campaigns.policy.decision import Facts, decide, load_facts
from channels.base import ChannelError, PermanentFailure, Receipt
from channels.email import EmailMessage, EmailSender
from channels.letters import Letter, LetterPrinter
from channels.mailbox import MAX_BATCH, MailboxGateway, MailboxMessage
from channels.resilience import Backoff

DISPATCHED_CHANNELS = (Channel.MAILBOX, Channel.EMAIL, Channel.LETTER)
MAX_TRIES = 5
# A `sending` row older than this was left by a crashed dispatcher: send it again (same key).
STALE_SENDING = timedelta(minutes=10)


@dataclass
class Adapters:
    """The providers behind each dispatched channel."""

    mailbox: MailboxGateway
    email: EmailSender
    letters: LetterPrinter
    # Mailbox batch deposits: messages a request (the contract's maximum is 500), and how many
    # requests may be in flight at once (settings: mailbox_batch_size, mailbox_requests_in_flight).
    mailbox_batch: int = MAX_BATCH
    mailbox_in_flight: int = 4
    # Shared by every dispatch lane: `mailbox_in_flight` is the ceiling for the whole process.
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.mailbox_batch <= MAX_BATCH:
            raise ValueError(
                f"RELANCE_MAILBOX_BATCH_SIZE doit être entre 1 et {MAX_BATCH} messages"
                f" (reçu : {self.mailbox_batch})"
            )
        if self.mailbox_in_flight < 1:
            raise ValueError(
                "RELANCE_MAILBOX_REQUESTS_IN_FLIGHT doit valoir au moins 1"
                f" (reçu : {self.mailbox_in_flight})"
            )
        self._slots = threading.BoundedSemaphore(self.mailbox_in_flight)


RETRY_FLOOR = timedelta(minutes=1)
RETRY_BASE = timedelta(minutes=2)
RETRY_CAP = timedelta(hours=4)


# The providers' backoff (channels.resilience), on the dispatcher's scale: minutes to hours
# between runs instead of seconds within a call.
RETRY_BACKOFF = Backoff(base=RETRY_BASE.total_seconds(), cap=RETRY_CAP.total_seconds())


def retry_delay(key: str, tries: int) -> timedelta:
    """The wait before the next try: exponential, capped, with full jitter seeded by the key."""
    # Seeded by (key, tries) so a schedule can be replayed, while the rows of one failed batch
    # still spread out instead of coming back together.
    jitter = RETRY_BACKOFF.delay(tries, seed=f"{key}#{tries}")
    return RETRY_FLOOR + timedelta(seconds=jitter)


def _member_state(
    person: Person, member: Member | None, opposed: AbstractSet[str], actions: Sequence[ActionView]
) -> MemberState:
    """The person as the planner would see them now, for its step conditions."""
    return MemberState(
        anchor_date=member.anchor_date if member else date.min,
        entered_on=member.entered_on if member else date.min,
        departement=person.departement,
        has_phone=bool(person.telephone) and not person.phone_invalid,
        has_compte_ameli=person.compte_ameli,
        has_email=bool(person.email) and not person.email_invalid,
        has_postal_address=bool(person.address_lines) and not person.address_invalid,
        opposed=frozenset(opposed),
        actions=actions,
        priority=member.priority if member else False,
    )


def next_step(
    definition: CampaignDefinition,
    step_id: str,
    *,
    person: Person,
    opposed: AbstractSet[str],
    anchor: date,
    today: date,
    member: Member | None = None,
    actions: Sequence[ActionView] = (),
) -> str:
    """The cascade step the person can still get after `step_id`, or 'none'.

    The planner's own window and conditions (`requires`, `unless`) decide, judged today on
    what the member's actions gave so far.
    """
    ids = [s.id for s in definition.cascade]
    parent = step_id.removesuffix("_notice") if step_id not in ids else step_id
    if parent not in ids or campaign_ended(definition, today):
        return "none"
    state = _member_state(person, member, opposed, actions)
    by_step: dict[str, list[ActionView]] = {}
    for a in actions:
        by_step.setdefault(a.step, []).append(a)
    for s in definition.cascade[ids.index(parent) + 1 :]:
        if step_window(definition, s, anchor)[1] < today:
            continue
        if ALL_CHANNELS in opposed or blocked_reason(state, s, by_step) is not None:
            continue
        return s.id
    return "none"


def _balanced(
    engine: Engine,
    campaign_id: str,
    channel: str,
    *,
    today: date,
    now: datetime,
    stale_before: datetime,
    limit: int,
) -> int:
    """A batch size that splits today's due actions evenly (no small last batch of letters)."""
    with session_scope(engine) as s:
        due = due_actions(campaign_id, channel, today, now, stale_before).subquery()
        n = int(s.scalar(select(func.count()).select_from(due)) or 0)
    if n <= limit:
        return limit
    batches = -(-n // limit)
    return -(-n // batches)


def _send_time_block(
    channel: str, member: MemberView, facts: Facts | None, now: datetime
) -> str | None:
    """Why an action must not go out now, checked again at send time (the contact policy).

    Pressure and contact hours were applied when the tick planned the action: here only
    what can change in between (death, enrolment, oppositions, contact details) stops it.
    """
    if member.status != ACTIVE:
        return f"member_{member.status_reason or member.status}"
    if facts is None:
        return Reason.DECEASED  # the person row is gone
    return decide(facts=facts, channel=channel, now=now, pressure=None).reason


@dataclass(frozen=True, slots=True)
class SendContext:
    """What sending to one member needs: their rows, the policy's facts, the channels tried."""

    member: MemberView
    person: PersonView
    facts: Facts | None
    opposed: frozenset[str]
    tried: list[str]


def _context_rows(
    session: Session,
    actions: Sequence[Claimed],
    today: date,
    definition: CampaignDefinition,
    *,
    tried: bool = True,
) -> dict[int, SendContext]:
    """Each claimed action's member, person, facts and channels tried (read only when
    `tried`: a template of the batch reads them), by member id."""
    member_ids = {a.member_id for a in actions}
    channel = actions[0].channel if actions else ""
    rows = member_people(session, member_ids, channel)
    # The contact policy's facts (oppositions and enrolments effective today, death, contact
    # details), read once for the batch: the send-time checks, notices and next steps use them.
    people = [p for _, p in rows.values()]
    facts = load_facts(
        session,
        people,
        today=today,
        pressure=None,
        goal=goal_reached(definition.id, definition.goal),
        reachable={p.id: (p.has_phone, p.has_email) for p in people},
    )
    channels = tried_channels(session, member_ids) if tried else {}
    out = {}
    for mid, (m, p) in rows.items():
        f = facts.get(p.id)
        out[mid] = SendContext(
            member=m,
            person=p,
            facts=f,
            opposed=f.opposed if f else frozenset(),
            tried=channels.get(mid, []),
        )
    return out


def person_context(p: Person | PersonView, today: date) -> dict[str, Any]:
    """What templates may know of a person (no NIR, no phone number)."""
    age = None
    if p.birth_year:
        age = today.year - p.birth_year - (1 if today.month < (p.birth_month or 1) else 0)
    return {
        "civilite": p.civilite,
        "nom": p.nom,
        "prenom": p.prenom,
        "age": age or 0,
        "address_lines": list(p.address_lines),
        "departement": p.departement,
    }


def member_context(m: Member | MemberView, tried: list[str]) -> dict[str, Any]:
    """What templates may know of a member's place in the campaign."""
    return {
        "anchor_date": m.anchor_date,
        "priority": m.priority,
        "gaps": list(m.gaps),
        "echelon": m.echelon,
        "channels_tried": tried,
    }


def _template_for(campaign: Campaign, step_id: str) -> str:
    for s in campaign.definition.cascade:
        if s.id == step_id:
            return s.template
        if s.notify and step_id == f"{s.id}_notice":
            return s.notify.template
    raise KeyError(step_id)


@lru_cache(maxsize=64)
def _template_info(env: Any, folder: Path, name: str) -> tuple[str, tuple[str, ...]]:
    """A template's SHA-256 and merge fields, once per loaded campaign (a new env on an edit)."""
    digest = hashlib.sha256((folder / "templates" / name).read_bytes()).hexdigest()
    # The address block is the record's checked AFNOR lines, not a merge field.
    block = "person.address_lines"
    paths = tuple(
        f for f in merge_fields(env, name) if f != block and not f.startswith(f"{block}.")
    )
    return digest, paths


def _letter(campaign: Campaign, a: Action | Claimed, name: str, context: dict[str, Any]) -> Letter:
    """A letter as data (template, version, merge fields); its HTML rendered only if printed."""
    digest, paths = _template_info(campaign.env, campaign.folder, name)
    return Letter(
        key=a.key,
        address_lines=tuple(context["person"]["address_lines"]),
        campaign=campaign.definition.id,
        template=f"{campaign.definition.id}/{name}",
        template_version=str(a.definition_version or 1),
        template_sha256=digest,
        fields=merge_values(context, paths),
        render=lambda: render_message(campaign.env, name, context)[1],
    )


def _message(
    campaign: Campaign,
    channel: str,
    a: Claimed,
    row: SendContext,
    today: date,
    rendered: dict[tuple[Any, ...], tuple[str, str]],
) -> MailboxMessage | EmailMessage | Letter:
    """The action's message, rendered from its step's template for this person.

    `rendered` holds the batch's renderings by what they depend on (`render_key`): the same
    text is rendered once.
    """
    context = build_context(
        definition=campaign.definition,
        person=person_context(row.person, today),
        member=member_context(row.member, row.tried),
        step_id=a.step,
        attempt=a.attempt,
        today=today,
    )
    name = _template_for(campaign, a.step)
    if channel == "letter":
        return _letter(campaign, a, name, context)
    key = render_key(campaign.env, name, context)
    text = rendered.get(key) if key is not None else None
    if text is None:
        text = render_message(campaign.env, name, context)
        if key is not None:
            rendered[key] = text
    subject, body = text
    contact = row.person.contact or ""
    if channel == "mailbox":
        return MailboxMessage(key=a.key, recipient=contact, subject=subject, body=body)
    return EmailMessage(key=a.key, to=contact, subject=subject, text=body)


def _send(
    campaign: Campaign,
    channel: str,
    to_send: list[tuple[Claimed, Any]],
    adapters: Adapters,
    today: date,
) -> list[Receipt | ChannelError]:
    """Hand the batch to the channel's provider: one result per message, in order."""
    if channel == "mailbox":
        return _deposit_chunks([m for _, m in to_send], adapters)
    if channel == "email":
        return adapters.email.send([m for _, m in to_send])
    batch_id = f"{campaign.definition.id}-{today.isoformat()}-{to_send[0][0].id}"
    return adapters.letters.print_batch(batch_id, [m for _, m in to_send])


def _deposit_chunks(
    messages: list[MailboxMessage], adapters: Adapters
) -> list[Receipt | ChannelError]:
    """Mailbox batch deposits, `mailbox_in_flight` requests at once; results in order.

    Every message is already `sending` (committed) with its key: a request that fails whole
    fails each of its messages with that error, and a crash before the results are written
    is repaired by depositing the same keys again, which the service absorbs.
    """
    size = adapters.mailbox_batch
    chunks = [messages[i : i + size] for i in range(0, len(messages), size)]

    def deposit(chunk: list[MailboxMessage]) -> list[Receipt | ChannelError]:
        try:
            with adapters._slots:
                results = adapters.mailbox.deposit_batch(chunk)
        except ChannelError as e:
            return [type(e)(str(e), key=m.key, code=e.code) for m in chunk]
        if len(results) != len(chunk):
            raise RuntimeError(f"mailbox answered {len(results)} results for {len(chunk)}")
        return results

    if len(chunks) <= 1 or adapters.mailbox_in_flight == 1:
        return [r for c in chunks for r in deposit(c)]
    with ThreadPoolExecutor(min(adapters.mailbox_in_flight, len(chunks))) as pool:
        return [r for rs in pool.map(deposit, chunks) for r in rs]


def dispatch_batch(
    *,
    engine: Engine,
    campaign: Campaign,
    channel: str,
    actions: Sequence[Claimed],
    adapters: Adapters,
    today: date,
    now: datetime,
) -> dict[str, int]:
    """Render and send one claimed batch; record each result.

    Three steps, no transaction open across the provider's call: read the batch's members
    and facts, send, then write every result in one transaction. Rows stay `sending` until
    then (committed by the claim), so a crash anywhere is repaired by sending the same keys.
    """
    counts: dict[str, int] = defaultdict(int)
    to_send: list[tuple[Claimed, Any]] = []
    cancelled: list[tuple[int, str]] = []
    final: list[tuple[Claimed, ChannelError]] = []
    rendered: dict[tuple[Any, ...], tuple[str, str]] = {}
    # Only call scripts say which channels were tried: a mailbox batch need not ask.
    tried = any(
        reads(campaign.env, _template_for(campaign, step), "member.channels_tried")
        for step in {a.step for a in actions}
    )
    with session_scope(engine) as session:
        ctx = _context_rows(session, actions, today, campaign.definition, tried=tried)
    # Past the campaign's end nothing goes out, whatever the tick left queued.
    ended = campaign_ended(campaign.definition, today)
    for a in actions:
        row = ctx[a.member_id]
        block: str | None = Reason.CAMPAIGN_ENDED if ended else None
        block = block or _send_time_block(a.channel, row.member, row.facts, now)
        if block:
            cancelled.append((a.id, block))
            counts[f"cancelled_{block}"] += 1
            continue
        try:
            to_send.append((a, _message(campaign, channel, a, row, today, rendered)))
        except TemplateError as e:
            # One person's rendering must not hold the batch: left `sending`, the whole batch
            # would be claimed again and fail again every run. Jinja names variables, not values.
            final.append((a, _render_failure(campaign, a, e)))
            counts["failed_final"] += 1
    results = _send(campaign, channel, to_send, adapters, today) if to_send else []
    notices: list[ActionRow] = []
    sent: list[tuple[int, str, str]] = []
    retry: list[tuple[int, str, datetime]] = []
    for (a, _), result in zip(to_send, results, strict=True):
        if isinstance(result, Receipt):
            notices += _notice_rows(campaign, a, ctx[a.member_id], today, now)
            sent.append((a.id, result.provider_id, result.status))
            counts["sent"] += 1
        elif result.retryable and a.tries < MAX_TRIES:
            retry.append((a.id, str(result), now + retry_delay(a.key, a.tries)))
            counts["failed_retryable"] += 1
        else:
            final.append((a, result))
            counts["failed_final"] += 1
    with session_scope(engine) as session:
        record_cancelled(session, cancelled, now)
        record_sent(session, sent, today, now)
        record_retryable(session, retry, now)
        for a, error in final:
            _fail_final(session, campaign.definition, a, error, ctx[a.member_id], today, now)
        if notices:
            counts["notices_planned"] += insert_actions(session, notices)
    return dict(counts)


def _render_failure(campaign: Campaign, a: Claimed, error: TemplateError) -> PermanentFailure:
    """A template that failed for this person, as a final failure naming the file and why."""
    name = _template_for(campaign, a.step)
    return PermanentFailure(
        f"modèle {name} : {jinja_message_fr(error.message)}", key=a.key, code=Reason.TEMPLATE_ERROR
    )


# A final failure that says a contact detail is wrong marks it, so no step uses it again.
_INVALIDATES = {Reason.INVALID_ADDRESS: "address_invalid", Reason.INVALID_EMAIL: "email_invalid"}


def _fail_final(
    session: Session,
    definition: CampaignDefinition,
    claimed: Claimed,
    error: ChannelError,
    row: SendContext,
    today: date,
    now: datetime,
) -> None:
    """Record a final failure, and what the cascade offers the person next, with the reason."""
    code = getattr(error, "code", Reason.FAILED) or Reason.FAILED
    # Rare: the rows are read as objects here, for the next step's conditions.
    a = session.get_one(Action, claimed.id)
    a.state, a.error, a.reason, a.updated_at = FAILED_FINAL, str(error), code, now
    person = session.get_one(Person, claimed.person_id)
    member = session.get_one(Member, claimed.member_id)
    flag = _INVALIDATES.get(code)
    if flag is not None:
        setattr(person, flag, True)
        person.updated_at = now
    # The member's actions so far, for the next step's conditions (a final failure is rare).
    views = action_views(session, [a.member_id], reads=uses_reads(definition))
    nxt = next_step(
        definition,
        a.step,
        person=person,
        opposed=row.opposed,
        anchor=member.anchor_date,
        today=today,
        member=member,
        actions=views.get(a.member_id, ()),
    )
    session.add(
        MemberEvent(
            member_id=a.member_id,
            on=today,
            kind="step_failed",
            detail={
                "step": a.step,
                "channel": a.channel,
                "attempt": a.attempt,
                "reason": code,
                "next_step": nxt,
                "text": f"{a.step} failed: {code} → {nxt}",
            },
        )
    )


def _notice_rows(
    campaign: Campaign, a: Claimed, row: SendContext, today: date, now: datetime
) -> list[ActionRow]:
    """The notice of a step that just went out, written with it (same key as the planner's)."""
    step = next((s for s in campaign.definition.cascade if s.id == a.step), None)
    if step is None or step.notify is None:
        return []
    decided = notice_decision(
        step,
        has_email=row.facts is not None and row.facts.email_ok,
        opposed=row.opposed,
        today=today,
    )
    skipped = isinstance(decided, Skip)
    return [
        ActionRow(
            campaign_id=a.campaign_id,
            member_id=a.member_id,
            person_id=a.person_id,
            priority=a.priority,
            anchor_date=a.anchor_date,
            created_at=now,
            updated_at=now,
            key=action_key(a.campaign_id, a.person_id, decided.step, 1),
            step=decided.step,
            channel=decided.channel,
            attempt=1,
            due_on=today,
            due_at=None,
            state=SKIPPED if skipped else QUEUED,
            reason=decided.reason,
            definition_version=a.definition_version,
        )
    ]


def mailbox_claim(adapters: Adapters) -> int:
    """Rows to claim at once so that every mailbox request in flight carries a full batch."""
    return adapters.mailbox_batch * adapters.mailbox_in_flight


def dispatch(
    *,
    engine: Engine,
    campaign: Campaign,
    channel: str,
    adapters: Adapters,
    today: date,
    now: datetime | None = None,
    batch_size: int = 500,
    stale_after: timedelta = STALE_SENDING,
    lanes: int = 1,
) -> dict[str, int]:
    """Drain every due action of a channel (used outside Prefect; the flow loops the same way).

    Mailbox: each claimed batch goes in deposits of `adapters.mailbox_batch` messages, several
    in flight; `mailbox_claim(adapters)` rows a claim keep every request in flight full.

    `lanes` > 1: that many loops claim disjoint batches side by side, so one prepares and
    records its batch while another's is with the provider (letters keep one lane: a print
    batch is a file, and PDFs already use every core).

    `stale_after=timedelta(0)` after a known crash: every `sending` row left before this run
    started is sent again with its key (never one this run claimed itself).
    """
    if lanes < 1:
        raise ValueError(f"RELANCE_DISPATCH_LANES doit valoir au moins 1 (reçu : {lanes})")
    stale_before = (now or utcnow()) - stale_after
    if channel == Channel.LETTER:
        lanes = 1
        # One print-house file per batch: 20,500 letters make two of 10,250, not 20,000 + 500
        # (a last batch under the PDF threshold would be printed as PDF).
        batch_size = _balanced(
            engine,
            campaign.definition.id,
            channel,
            today=today,
            now=now or utcnow(),
            stale_before=stale_before,
            limit=batch_size,
        )
    stop = threading.Event()

    def lane() -> dict[str, int]:
        total: dict[str, int] = defaultdict(int)
        # Claims go up the ids from where the last one ended (a claim from the start walked
        # every action sent before it: quadratic over a region's day); when the top is reached,
        # one claim from the start takes what is due below (retries, rows left `sending`), and
        # the lane stops when that finds nothing.
        after = 0
        try:
            while not stop.is_set():
                stamp = now or utcnow()
                with session_scope(engine) as s:
                    claimed = claim_rows(
                        session=s,
                        campaign_id=campaign.definition.id,
                        channel=channel,
                        today=today,
                        now=stamp,
                        limit=batch_size,
                        stale_before=stale_before,
                        after_id=after,
                    )
                if not claimed:
                    if after == 0:
                        break
                    after = 0
                    continue
                after = claimed[-1].id
                for k, v in dispatch_batch(
                    engine=engine,
                    campaign=campaign,
                    channel=channel,
                    actions=claimed,
                    adapters=adapters,
                    today=today,
                    now=stamp,
                ).items():
                    total[k] += v
                total["batches"] += 1
        except BaseException:
            stop.set()  # the other lanes finish their batch and stop
            raise
        return total

    if lanes == 1:
        return dict(lane())
    with ThreadPoolExecutor(lanes, thread_name_prefix=f"dispatch-{channel}") as pool:
        futures = [pool.submit(lane) for _ in range(lanes)]
        totals = [f.result() for f in futures]
    out: dict[str, int] = defaultdict(int)
    for t in totals:
        for k, v in t.items():
            out[k] += v
    return dict(out)
