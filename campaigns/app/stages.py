"""The daily stages as use cases: Prefect tasks in flows/ wrap them, the demo calls them."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.app.people import store_admission_explanations
from campaigns.cascade.dispatch import Adapters, dispatch, mailbox_claim
from campaigns.cascade.enrolments import ingest_enrolment_file
from campaigns.cascade.goals import ObservedGoal, Observer, observe_goals
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.partitions import member_ranges
from campaigns.cascade.planner import campaign_ended
from campaigns.cascade.review import expire_overdue, is_launched, list_status, pending_list
from campaigns.cascade.tick import tick
from campaigns.clock import utcnow
from campaigns.definition.catalog import Campaign
from campaigns.definition.goals import EnrolmentGoal, RegistryFactGoal
from campaigns.feedback.mailbox_reads import record_reads, unread_messages
from campaigns.ledger.audit import checkpoint
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Campaign as CampaignRow
from campaigns.ledger.models import Member, Person, StageRun
from campaigns.ledger.registry import register_campaign
from campaigns.measurement.report import EchelonRow, echelon_report
from channels.mailbox import MailboxGateway
from targeting.engine import run_targeting
from targeting.goals import observations
from targeting.people import read_people

log = logging.getLogger("relance.stages")

Range = tuple[int, int]
# One partition of the day's tick; the tick itself is recorded once all of them have run.
PARTITION_STAGE = "tick_part"


def _record(
    engine: Engine,
    campaign_id: str,
    stage: str,
    day: date,
    started: datetime,
    counts: dict[str, Any],
) -> None:
    with session_scope(engine) as s:
        s.add(
            StageRun(
                campaign_id=campaign_id,
                stage=stage,
                day=day,
                started_at=started,
                finished_at=utcnow(),
                counts=counts,
            )
        )


def register(*, engine: Engine, campaign: Campaign, objective_scale: float = 1.0) -> None:
    """Make the campaign known to the ledger (idempotent)."""
    with session_scope(engine) as s:
        register_campaign(
            session=s,
            definition=campaign.definition,
            objective_scale=objective_scale,
            folder=campaign.folder,
        )


def targeting_stage(
    *, engine: Engine, campaign: Campaign, extract: Path, day: date
) -> dict[str, int]:
    """Run the rule over the extract and admit who entered the horizon; close who changed."""
    started = utcnow()
    d = campaign.definition
    table = run_targeting(rule=d.targeting, extract=extract, as_of=day, include_ineligible=True)
    with session_scope(engine) as s:
        member_keys = s.exec(
            select(Person.ben_nir_psa, Person.ben_rng_gem)
            .join(Member, col(Member.person_id) == col(Person.id))
            .where(Member.campaign_id == d.id)
        ).all()
    # Keep eligible people and current members (for their exits): nothing else is needed.
    keep = pc.field("eligible")
    if member_keys:
        known = pa.array([f"{a}|{b}" for a, b in member_keys])
        joined = pc.binary_join_element_wise(
            table["ben_nir_psa"], pc.cast(table["ben_rng_gem"], pa.string()), "|"
        )
        table = table.append_column("_k", joined)
        keep = keep | pc.field("_k").isin(known)
    targets = table.filter(keep).to_pandas()
    eligible = targets[targets["eligible"].astype(bool)]
    people = (
        read_people(extract, eligible[["ben_nir_psa", "ben_rng_gem"]]) if len(eligible) else None
    )
    with session_scope(engine) as s:
        counts = admit_targets(
            session=s,
            definition=d,
            targets=targets,
            people=people if people is not None else targets.iloc[0:0],
            today=day,
        )
    # Every admitted person's explanation, in one set-based pass: the person page only reads it.
    with session_scope(engine) as s:
        store_admission_explanations(
            session=s, campaign_id=d.id, extract=extract, day=day, rule=d.targeting
        )
    _record(engine, d.id, "targeting", day, started, counts)
    return counts


def validation_check(*, engine: Engine, campaign_id: str, day: date) -> dict[str, Any]:
    """Expire a list past its deadline; say whether contacts may start and what waits."""
    with session_scope(engine) as s:
        expired = expire_overdue(session=s, campaign_id=campaign_id, today=day)
        lst = pending_list(session=s, campaign_id=campaign_id)
        out: dict[str, Any] = {
            "launched": is_launched(session=s, campaign_id=campaign_id),
            "expired_list": expired.id if expired else None,
        }
        if lst is not None:
            status = list_status(session=s, target_list=lst)
            out["pending_list"] = lst.id
            out["deadline"] = lst.deadline.isoformat()
            out["missing_signoffs"] = status.missing_signoffs
        return out


def ticked(*, engine: Engine, campaign_id: str, day: date) -> bool:
    """Whether the day's tick has run (an afternoon pass dispatches only after it)."""
    with session_scope(engine) as s:
        row = s.exec(
            select(StageRun.id).where(
                StageRun.campaign_id == campaign_id, StageRun.stage == "tick", StageRun.day == day
            )
        ).first()
    return row is not None


def tick_stage(
    *, engine: Engine, campaign: Campaign, day: date, batch_size: int = 2000, workers: int = 1
) -> dict[str, int]:
    """Plan every active member, one transaction per batch (`workers` at a time)."""
    started = utcnow()
    d = campaign.definition
    total = tick(engine=engine, definition=d, today=day, batch_size=batch_size, workers=workers)
    _record(engine, d.id, "tick", day, started, total)
    return total


def tick_partitions(*, engine: Engine, campaign: Campaign, day: date, parts: int) -> list[Range]:
    """The id ranges a tick shared by `parts` runs plans; none when the whole tick must run
    (the campaign paused, ended or past its end: its closing pass is done once)."""
    d = campaign.definition
    with session_scope(engine) as s:
        row = s.get(CampaignRow, d.id)
        if row is None or row.paused_at is not None or row.ended_at is not None:
            return []
        if campaign_ended(d, day):
            return []
        return member_ranges(session=s, campaign_id=d.id, parts=parts)


def tick_partition_stage(
    *,
    engine: Engine,
    campaign: Campaign,
    day: date,
    within: Range,
    batch_size: int = 2000,
    workers: int = 1,
) -> dict[str, int]:
    """Plan the active members of one id range (one partition of the day's tick)."""
    started = utcnow()
    d = campaign.definition
    total = tick(
        engine=engine,
        definition=d,
        today=day,
        batch_size=batch_size,
        within=within,
        workers=workers,
    )
    _record(
        engine, d.id, PARTITION_STAGE, day, started, {**total, "lo": within[0], "hi": within[1]}
    )
    return total


def tick_partitions_done(
    *, engine: Engine, campaign_id: str, day: date, started: datetime
) -> dict[str, int]:
    """The day's tick once every partition has run: their counts summed, recorded as the tick."""
    with session_scope(engine) as s:
        parts = s.exec(
            select(StageRun.counts).where(
                StageRun.campaign_id == campaign_id,
                StageRun.stage == PARTITION_STAGE,
                StageRun.day == day,
                col(StageRun.started_at) >= started,
            )
        ).all()
    total: Counter[str] = Counter()
    for counts in parts:
        total.update({k: int(v) for k, v in counts.items() if k not in ("lo", "hi")})
    out = {**total, "partitions": len(parts)}
    _record(engine, campaign_id, "tick", day, started, out)
    return out


def dispatch_stage(
    *,
    engine: Engine,
    campaign: Campaign,
    adapters: Adapters,
    day: date,
    channel: str,
    now: datetime | None = None,
    batch_size: int = 500,
    lanes: int = 1,
) -> dict[str, int]:
    """Send every due action of one channel (`lanes` loops side by side)."""
    started = utcnow()
    if channel == "mailbox":
        # A claim large enough for every batch deposit in flight to be full.
        batch_size = max(batch_size, mailbox_claim(adapters))
    counts = dispatch(
        engine=engine,
        campaign=campaign,
        channel=channel,
        adapters=adapters,
        today=day,
        now=now,
        batch_size=batch_size,
        lanes=lanes,
    )
    _record(engine, campaign.definition.id, f"dispatch_{channel}", day, started, counts)
    return counts


def mailbox_reads_stage(
    *,
    engine: Engine,
    campaign: Campaign,
    gateway: MailboxGateway,
    day: date,
    batch_size: int = 500,
) -> dict[str, int]:
    """Record which deposited messages their person has read (one transaction per batch)."""
    started = utcnow()
    total: Counter[str] = Counter()
    after = 0
    while True:
        with session_scope(engine) as s:
            batch = unread_messages(
                session=s,
                campaign_id=campaign.definition.id,
                today=day,
                after_id=after,
                limit=batch_size,
            )
            if not batch:
                break
            after = batch[-1].id or after
            total.update(
                record_reads(session=s, gateway=gateway, actions=batch, today=day, now=utcnow())
            )
    counts = dict(total)
    _record(engine, campaign.definition.id, "mailbox_reads", day, started, counts)
    return counts


def enrolment_stage(
    *, engine: Engine, campaign: Campaign, files: list[Path], day: date, now: datetime | None = None
) -> dict[str, Any]:
    """Ingest the campaign's enrolment files (idempotent); each row credited to it only.

    A campaign whose goal is observed in the extract (care act, registry fact) has no feed:
    its files, if any, are not read.
    """
    started = utcnow()
    d = campaign.definition
    goal = d.goal if isinstance(d.goal, EnrolmentGoal) else None
    total: dict[str, Any] = {
        "files": len(files) if goal else 0,
        "rows": 0,
        "new": 0,
        "members_closed": 0,
        "errors": [],
    }
    for f in files:
        if goal is None:
            break
        with session_scope(engine) as s:
            rep = ingest_enrolment_file(
                session=s,
                path=f,
                campaign_id=d.id,
                programme=goal.programme,
                date_column=goal.date_column,
                now=now,
            )
        total["rows"] += rep.rows
        total["new"] += rep.new
        total["members_closed"] += rep.members_closed
        total["errors"] += rep.errors
    _record(engine, d.id, "enrolments", day, started, total)
    return total


def _observe_in_extract(*, extract: Path, goal: ObservedGoal, since: Any) -> Any:
    """The targeting's observation of a goal in the extract (`targeting.goals.observations`):
    a care act by its source and codes, a registry fact by its name."""
    spec = goal.fact if isinstance(goal, RegistryFactGoal) else goal
    return observations(extract=extract, goal=spec, people=since).to_pandas()


def goal_observation_stage(
    *,
    engine: Engine,
    campaign: Campaign,
    extract: Path,
    day: date,
    observe: Observer | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Observe a care act / registry fact goal in the extract for the active members; record
    what is found as the campaign's goal rows and close those members (status goal)."""
    started = utcnow()
    d = campaign.definition
    goal = d.goal
    if goal.kind == "enrolment":
        counts: dict[str, Any] = {"skipped": "enrolment goal: the feed says it"}
    else:
        with session_scope(engine) as s:
            rep = observe_goals(
                session=s,
                campaign_id=d.id,
                goal=goal,
                extract=extract,
                observe=observe or _observe_in_extract,
                today=day,
                now=now or utcnow(),
            )
        counts = rep.as_dict()
    _record(engine, d.id, "goals", day, started, counts)
    return counts


def report_stage(*, engine: Engine, campaign: Campaign) -> list[EchelonRow]:
    """The objectives table."""
    with session_scope(engine) as s:
        return echelon_report(
            session=s,
            campaign_id=campaign.definition.id,
            objectives=campaign.definition.objectives,
        )


def audit_checkpoint_stage(*, engine: Engine) -> list[dict[str, Any]]:
    """Attest each audit lane's last committed event outside the database (the checkpoints
    file); [] when the log is empty. The day's last step and `relance audit checkpoint` both
    call it."""
    with session_scope(engine) as s:
        return checkpoint(session=s)


ProgressFn = Callable[[str], None]
