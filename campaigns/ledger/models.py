"""The ledger: people, campaign members, actions (the outbox), enrolments, oppositions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from campaigns.ledger.crypto import Encrypted
from campaigns.ledger.roles import ROLES as ROLES  # re-exported: older importers
from campaigns.ledger.vocabulary import OPEN_STATES as OPEN_STATES  # re-exported for importers
from campaigns.ledger.vocabulary import SUCCESS_STATES as SUCCESS_STATES
from campaigns.ledger.vocabulary import ActionState, ListState, MemberStatus

# The states' short names, kept for importers; the enums and sets live in ledger.vocabulary.
QUEUED = ActionState.QUEUED
SENDING = ActionState.SENDING
SENT = ActionState.SENT
DELIVERED = ActionState.DELIVERED
FAILED_RETRYABLE = ActionState.FAILED_RETRYABLE
FAILED_FINAL = ActionState.FAILED_FINAL
DONE = ActionState.DONE
SKIPPED = ActionState.SKIPPED
CANCELLED = ActionState.CANCELLED
PENDING = MemberStatus.PENDING
ACTIVE = MemberStatus.ACTIVE
GOAL = MemberStatus.GOAL
EXITED = MemberStatus.EXITED
COMPLETED = MemberStatus.COMPLETED


class Campaign(SQLModel, table=True):
    """A campaign known to this ledger, with the hash of the definition it runs."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    definition_sha256: str = Field(max_length=64)
    registered_at: datetime
    launched_at: datetime | None = None
    # Decisions of its manager (the other states are derived): paused since, ended on.
    paused_at: datetime | None = None
    ended_at: datetime | None = None


class CampaignVersion(SQLModel, table=True):
    """One version of a campaign's definition: its fingerprint and the day it took effect.

    Before launch the draft's only version is refreshed in place; once the campaign runs,
    an edit is a new version (1, 2, 3…) from a date, and each action records its version.
    """

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    version: int
    definition_sha256: str = Field(max_length=64)
    effective_on: date
    recorded_at: datetime
    # Who made it: a console user for a version edited in the browser, None when registered.
    recorded_by: str | None = Field(default=None, max_length=64)

    __table_args__ = (UniqueConstraint("campaign_id", "version", name="uq_campaign_version"),)


class CampaignDraft(SQLModel, table=True):
    """A campaign made in the console: a draft until its manager marks it ready.

    Its files are `DefinitionFile` rows of version 1; a draft is never in the catalogue (no
    folder), so no flow admits, ticks or dispatches it. Marked ready, its files are written
    under `data_dir/campaigns/<id>/v1/` where the catalogue finds it.
    """

    campaign_id: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=16)  # draft | ready
    origin: str = Field(max_length=64)  # the shipped campaign copied, or "" from scratch
    created_by: str = Field(max_length=64)
    created_at: datetime
    updated_by: str = Field(max_length=64)
    updated_at: datetime
    ready_at: datetime | None = None


class DefinitionFile(SQLModel, table=True):
    """One file of one version of a campaign's definition (campaign.yaml or a template)."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=64, index=True)
    version: int
    path: str = Field(max_length=200)  # "campaign.yaml", "templates/letter.html.j2"
    text: str
    saved_by: str = Field(max_length=64)
    saved_at: datetime

    __table_args__ = (
        UniqueConstraint("campaign_id", "version", "path", name="uq_definition_file"),
    )


class Person(SQLModel, table=True):
    """An insured person and how to reach them (from the fund's contact file)."""

    id: int | None = Field(default=None, primary_key=True)
    ben_nir_psa: str = Field(max_length=64)
    ben_rng_gem: int
    nir: str = Field(sa_column=Column(Encrypted("person.nir"), nullable=False))
    civilite: str = Field(max_length=8)
    nom: str
    prenom: str
    address_lines: list[str] = Field(sa_column=Column(JSON, nullable=False))
    telephone: str | None = Field(
        default=None,
        sa_column=Column(Encrypted("person.telephone", empty_as_null=True), nullable=True),
    )
    email: str | None = Field(
        default=None, sa_column=Column(Encrypted("person.email", empty_as_null=True), nullable=True)
    )
    compte_ameli: bool = False
    echelon: str = Field(max_length=8)
    departement: str = Field(max_length=3)
    sex: int = 0
    birth_year: int | None = None
    birth_month: int | None = None
    phone_invalid: bool = False
    email_invalid: bool = False
    address_invalid: bool = False
    deceased_on: date | None = None
    updated_at: datetime

    __table_args__ = (UniqueConstraint("ben_nir_psa", "ben_rng_gem", name="uq_person_key"),)


class Member(SQLModel, table=True):
    """A person in a campaign: why they entered, where they are in the cascade."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    person_id: int = Field(foreign_key="person.id")
    echelon: str = Field(max_length=8)
    entered_on: date
    anchor_date: date
    priority: bool = False
    gaps: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    holdout: bool = False
    status: str = Field(default=ACTIVE, max_length=16)
    status_reason: str | None = None
    status_on: date | None = None
    last_seen_on: date

    __table_args__ = (
        UniqueConstraint("campaign_id", "person_id", name="uq_member_person"),
        Index("ix_member_campaign_status", "campaign_id", "status"),
    )


class MemberExplanation(SQLModel, table=True):
    """A member's targeting explanation, stored once so the person page never recomputes it."""

    __tablename__ = "member_explanation"

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    as_of: date
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    stored_at: datetime


class Action(SQLModel, table=True):
    """One outbound action, keyed (campaign, person, step, attempt) before any provider call."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=160, unique=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    member_id: int = Field(foreign_key="member.id")
    person_id: int = Field(foreign_key="person.id")
    step: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    attempt: int
    due_on: date
    due_at: datetime | None = None
    state: str = Field(default=QUEUED, max_length=20)
    reason: str | None = None
    priority: bool = False
    anchor_date: date | None = None
    tries: int = 0
    next_try_at: datetime | None = None
    provider_id: str | None = None
    error: str | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    outcome: str | None = None
    outcome_notes: str | None = None
    callback_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    done_on: date | None = None
    # Provider timestamps: accepted by the provider, then delivered (from its events).
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    # The campaign definition's version that planned it (CampaignVersion.version).
    definition_version: int | None = None

    __table_args__ = (
        # Lookups always ask for a value; planned actions (millions on a launch day) have none.
        Index(
            "ix_action_provider_id",
            "provider_id",
            postgresql_where=text("provider_id IS NOT NULL"),
            sqlite_where=text("provider_id IS NOT NULL"),
        ),
        Index("ix_action_dispatch", "channel", "state", "due_on"),
        Index("ix_action_member", "member_id"),
        Index("ix_action_person", "person_id"),
        Index(
            "ix_action_claimed_by",
            "claimed_by",
            postgresql_where=text("claimed_by IS NOT NULL"),
            sqlite_where=text("claimed_by IS NOT NULL"),
        ),
        # The call queue in claim order, so a claim reads a few rows, not the whole list.
        Index(
            "ix_action_call_queue",
            text("(due_at IS NULL)"),
            text("priority DESC"),
            "anchor_date",
            "id",
            postgresql_where=text("channel = 'phone' AND state = 'queued'"),
            sqlite_where=text("channel = 'phone' AND state = 'queued'"),
        ),
    )


class MemberEvent(SQLModel, table=True):
    """A dated fact of a member's life in the campaign, in words a user can read."""

    # The claim's "skipped today" rule reads one day's events of one kind.
    __table_args__ = (Index("ix_memberevent_on_kind", "on", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    on: date
    kind: str = Field(max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# The channel of a goal row observed in the extract (a care act, a registry fact).
OBSERVED_CHANNEL = "observed"


class Enrolment(SQLModel, table=True):
    """A goal reached, credited to one campaign: an enrolment from the campaign's feed, or a
    care act / registry fact observed in the extract (`programme` then names the goal kind).

    `campaign_id` is NULL only for rows older than per-campaign crediting that no member of
    any campaign matched (migration 0009): they still say the person enrolled in `programme`.
    """

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str | None = Field(default=None, max_length=64)
    ben_nir_psa: str = Field(max_length=64)
    ben_rng_gem: int
    programme: str = Field(max_length=32)
    enrolled_on: date
    channel: str = Field(max_length=16)
    source: str

    __table_args__ = (
        UniqueConstraint("ben_nir_psa", "ben_rng_gem", "campaign_id", name="uq_enrolment"),
        Index("ix_enrolment_campaign", "campaign_id", "enrolled_on"),
        Index("ix_enrolment_programme", "ben_nir_psa", "ben_rng_gem", "programme"),
    )


class Opposition(SQLModel, table=True):
    """A person's objection to being contacted, on one channel or all."""

    id: int | None = Field(default=None, primary_key=True)
    ben_nir_psa: str = Field(max_length=64)
    ben_rng_gem: int
    canal: str = Field(max_length=16)
    opposed_on: date
    source: str

    __table_args__ = (
        UniqueConstraint("ben_nir_psa", "ben_rng_gem", "canal", name="uq_opposition"),
    )


class StageRun(SQLModel, table=True):
    """One run of a daily stage for a campaign, with what it did."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(max_length=64)
    stage: str = Field(max_length=32)
    day: date
    started_at: datetime
    finished_at: datetime | None = None
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))

    __table_args__ = (Index("ix_stage_run", "campaign_id", "stage", "day"),)


class Objective(SQLModel, table=True):
    """An enrolment objective for an échelon; a new row per change keeps the history."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64)
    echelon: str = Field(max_length=8)
    target: int
    set_at: datetime
    set_by: str
    note: str | None = None

    __table_args__ = (Index("ix_objective", "campaign_id", "echelon", "set_at"),)


LIST_PENDING = ListState.PENDING
LIST_APPROVED = ListState.APPROVED
LIST_EXPIRED = ListState.EXPIRED
LIST_REJECTED = ListState.REJECTED


class TargetList(SQLModel, table=True):
    """A targeted list awaiting local validation before launch, and its decision."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=64, index=True)
    created_on: date
    deadline: date
    state: str = Field(default=LIST_PENDING, max_length=16)
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    flow_run_id: str | None = Field(default=None, max_length=64)


class EchelonSignoff(SQLModel, table=True):
    """An échelon's review of its part of a list: who validated it, when."""

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="targetlist.id")
    echelon: str = Field(max_length=8)
    signed_by: str
    signed_at: datetime

    __table_args__ = (UniqueConstraint("list_id", "echelon", name="uq_signoff"),)


class Exclusion(SQLModel, table=True):
    """A person taken off a list by their échelon, with the reason; reversible until launch."""

    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="targetlist.id", index=True)
    member_id: int = Field(foreign_key="member.id")
    echelon: str = Field(max_length=8)
    reason: str = Field(max_length=32)
    note: str | None = None
    excluded_by: str
    excluded_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None


class User(SQLModel, table=True):
    """A console account: its role and the platform or échelon it acts for."""

    __tablename__ = "account"  # `user` is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str
    password_hash: str
    role: str = Field(max_length=24)
    echelon: str | None = Field(default=None, max_length=8)
    platform: str | None = Field(default=None, max_length=32)
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime
    # The adviser's own line (E.164): Twilio rings it first, then bridges the insured person.
    phone_line: str | None = Field(default=None, max_length=20)
    # The adviser page's last heartbeat: the board says "absent" a minute after it stops.
    last_seen_at: datetime | None = None


class ConsoleSession(SQLModel, table=True):
    """A console login, held server-side: the cookie carries only its signed id.

    The row is keyed by the SHA-256 of the id (a copy of the table opens no session); logout,
    a password change or an administrator ends it, and an ended or expired row opens nothing.
    """

    __tablename__ = "console_session"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(index=True)
    username: str = Field(max_length=64)
    issued_at: datetime
    last_seen: datetime
    ended_at: datetime | None = None
    end_reason: str | None = Field(default=None, max_length=32)
    # What the pages keep between requests (the CSRF token is derived, not kept here).
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditEvent(SQLModel, table=True):
    """Who saw or changed what, when; each row hashes the previous one of its lane."""

    __table_args__ = (Index("ix_auditevent_lane_seq", "lane", "seq", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    # The chain the event is in (`AuditHead.id`): writers at the same moment use different
    # lanes instead of waiting for one another (migration 0017).
    lane: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # 1, 2, 3… with no gap within the lane; None only in a database not yet migrated to 0008.
    seq: int | None = None
    scheme: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    at: datetime
    actor: str = Field(max_length=64)
    action: str = Field(max_length=48)
    target: str = Field(max_length=128)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One audit lane's last sequence number and hash (`id` is the lane), taken by its writer."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int
    hash: str = Field(max_length=64)


# Telephony statuses, as Twilio names them; the last five end a call.
CALL_END_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")


class PhoneCall(SQLModel, table=True):
    """One agent-bridged call placed for a call-list entry, and what the telephony saw of it.

    Written (with its key) before the provider is asked to dial; the adviser's outcome stays
    on the action, the telephony status is kept here beside it.
    """

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=180, unique=True)
    action_id: int = Field(foreign_key="action.id", index=True)
    adviser: str = Field(max_length=64)
    status: str = Field(default="initiated", max_length=20)
    call_sid: str | None = Field(default=None, max_length=64, unique=True)
    error: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: int | None = None
    created_at: datetime
    updated_at: datetime


class ProviderEvent(SQLModel, table=True):
    """A provider callback or an imported return, kept once: a duplicate is recognised by id."""

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    event_id: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    ref: str | None = Field(default=None, max_length=180)
    received_at: datetime
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))

    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_provider_event"),)
