"""A tick shared by partition runs writes what the whole tick writes (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.app import stages
from campaigns.cascade.partitions import member_ranges
from campaigns.clock import utcnow
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.ledger.models import ACTIVE, Action, Member, Person
from campaigns.ledger.registry import register_campaign

# The flu wave: many members on its launch day, all of them planned by the launch tick.
CAMPAIGN = load_campaign("grippe-2026")
CID = CAMPAIGN.definition.id
DAY = CAMPAIGN.definition.dates.start


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from targeting.synth import write_extract

    out = tmp_path_factory.mktemp("extract") / "x"
    write_extract(out=out, people=3_000, seed=5, as_of=DAY, fmt="parquet")
    return out


def _members(engine: Engine, extract: Path) -> None:
    with session_scope(engine) as s:
        register_campaign(session=s, definition=CAMPAIGN.definition, launched=True)
    stages.targeting_stage(engine=engine, campaign=CAMPAIGN, extract=extract, day=DAY)


def _ledger(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The actions and the members' states, by the person's own key (not the database's ids)."""
    with session_scope(engine) as s:
        actions = s.exec(
            select(
                Person.ben_nir_psa,
                Person.ben_rng_gem,
                Action.step,
                Action.channel,
                Action.attempt,
                Action.due_on,
                Action.state,
                Action.reason,
                Action.priority,
            )
            .join(Person, col(Person.id) == col(Action.person_id))
            .where(Action.campaign_id == CID)
        ).all()
        members = s.exec(
            select(
                Person.ben_nir_psa, Person.ben_rng_gem, Member.status, Member.status_reason
            ).join(Person, col(Person.id) == col(Member.person_id))
        ).all()
    return sorted(map(tuple, actions)), sorted(map(tuple, members), key=str)


@pytest.fixture(scope="module")
def whole_tick(extract: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, ...]:
    """The reference: the whole tick, in one run, on a ledger of its own."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}")
    upgrade(engine)
    _members(engine, extract)
    counts = stages.tick_stage(engine=engine, campaign=CAMPAIGN, day=DAY)
    ledger = _ledger(engine)
    engine.dispose()
    return counts, ledger


def test_the_ranges_cover_every_active_member_once(engine: Engine, extract: Path) -> None:
    _members(engine, extract)
    with session_scope(engine) as s:
        ids = s.exec(
            select(Member.id).where(Member.campaign_id == CID, Member.status == ACTIVE)
        ).all()
        ranges = member_ranges(session=s, campaign_id=CID, parts=3)
        assert member_ranges(session=s, campaign_id=CID, parts=10_000)[0][0] == min(ids)
        with pytest.raises(ValueError, match="au moins 1"):
            member_ranges(session=s, campaign_id=CID, parts=0)
    assert len(ids) > 100 and len(ranges) == 3
    covered = [[i for i in ids if i is not None and lo <= i <= hi] for lo, hi in ranges]
    assert sorted(i for part in covered for i in part) == sorted(ids)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
    assert max(map(len, covered)) - min(map(len, covered)) <= 1  # as many in each


def test_partitions_write_what_the_whole_tick_writes(
    engine: Engine, extract: Path, whole_tick: tuple[object, ...]
) -> None:
    counts, reference = whole_tick
    _members(engine, extract)
    ranges = stages.tick_partitions(engine=engine, campaign=CAMPAIGN, day=DAY, parts=3)
    assert len(ranges) == 3
    started = utcnow()
    for lo, hi in reversed(ranges):  # the order the workers take them in does not matter
        part = stages.tick_partition_stage(
            engine=engine, campaign=CAMPAIGN, day=DAY, within=(lo, hi)
        )
        assert part["actions_written"] > 0  # each plans its own members, not everyone's
    assert not stages.ticked(engine=engine, campaign_id=CID, day=DAY)
    total = stages.tick_partitions_done(engine=engine, campaign_id=CID, day=DAY, started=started)
    assert stages.ticked(engine=engine, campaign_id=CID, day=DAY)
    assert _ledger(engine) == reference
    assert isinstance(counts, dict)
    assert total["actions_written"] == counts["actions_written"] > 0
    assert total["partitions"] == 3

    # A partition run again (a retried flow run) writes nothing twice.
    again = stages.tick_partition_stage(engine=engine, campaign=CAMPAIGN, day=DAY, within=ranges[0])
    assert again.get("actions_written", 0) == 0
    assert _ledger(engine) == reference


def test_a_paused_campaign_is_not_partitioned(engine: Engine, extract: Path) -> None:
    from campaigns.app.lifecycle import pause_campaign

    _members(engine, extract)
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="mgr", campaign_id=CID)
    assert stages.tick_partitions(engine=engine, campaign=CAMPAIGN, day=DAY, parts=3) == []
    # a partition started before the pause plans nothing either
    assert stages.tick_partition_stage(
        engine=engine, campaign=CAMPAIGN, day=DAY, within=(0, 10**9)
    ) == {"paused": 1, "batches": 0}
