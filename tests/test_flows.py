"""The Prefect flows, end to end on a small synthetic extract, under one test harness."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from campaigns.db import get_engine, session_scope
from campaigns.models import Action, Member, StageRun
from tests.conftest import launch

AS_OF = date(2026, 3, 2)


@pytest.fixture(scope="session")
def small_extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from targeting.synth import write_extract

    out = tmp_path_factory.mktemp("extract") / "x"
    write_extract(out=out, people=30_000, seed=7, as_of=AS_OF, fmt="parquet")
    return out


def _count(model: type, *where: object) -> int:
    with session_scope(get_engine()) as s:
        return int(s.exec(select(func.count()).select_from(model).where(*where)).one())


def test_a_campaign_day_twice_changes_nothing(
    prefect_harness: None, small_extract: Path, platform: Path
) -> None:
    from flows.daily import campaign_day

    # Before launch, people wait on the list the échelons review: nobody is contacted.
    listed = campaign_day(campaign_id="sophia-ald8", extract_dir=str(small_extract), day=AS_OF)
    assert listed["targeting"]["pending_validation"] == _count(Member) > 0
    assert _count(Action) == 0
    launch(get_engine(), "sophia-ald8")
    day = AS_OF + timedelta(days=1)
    first = campaign_day(campaign_id="sophia-ald8", extract_dir=str(small_extract), day=day)
    members, actions = _count(Member), _count(Action)
    assert first["targeting"]["pending_validation"] == 0
    assert actions > 0
    second = campaign_day(campaign_id="sophia-ald8", extract_dir=str(small_extract), day=day)
    assert second["targeting"]["admitted"] == 0
    assert (_count(Member), _count(Action)) == (members, actions)
    assert second["tick"]["actions_written"] == 0
    assert _count(StageRun, StageRun.stage == "tick") == 3
    assert [r["echelon"] for r in second["report"]] == sorted(
        r["echelon"] for r in second["report"]
    )


def test_dispatch_sends_due_documents_into_the_outbox(
    prefect_harness: None, small_extract: Path, platform: Path
) -> None:
    from flows.daily import cascade_tick, channel_dispatch, daily_targeting

    # Play enough days for letters (at renewal) and mailbox messages (renewal - 45) to be due.
    for i in range(0, 50, 7):
        day = AS_OF + timedelta(days=i)
        daily_targeting(campaign_id="sophia-ald8", extract_dir=str(small_extract), day=day)
        if i == 0:
            launch(get_engine(), "sophia-ald8")
        cascade_tick(campaign_id="sophia-ald8", day=day)
        result = channel_dispatch(campaign_id="sophia-ald8", day=day)
        assert set(result) == {"mailbox", "email", "letter", "mailbox_reads"}
    sent = _count(Action, Action.state.in_(["sent", "delivered"]))  # type: ignore[attr-defined]
    assert sent > 0
    files = [p for p in (platform / "outbox").rglob("*") if p.is_file()]
    assert len(files) >= sent


def test_enrolment_feed_flow_ingests_the_folder(prefect_harness: None, platform: Path) -> None:
    from flows.daily import enrolment_feed

    feeds = platform / "feeds"
    feeds.mkdir()
    (feeds / "enrolments_2026-03-02.csv").write_text(
        "ben_nir_psa,ben_rng_gem,date_adhesion,canal\nA,1,2026-03-02,online\nB,x,2026-03-02,online\n"
    )
    rep = enrolment_feed(campaign_id="sophia-ald8", day=AS_OF)
    assert (rep["rows"], rep["new"], len(rep["errors"])) == (2, 1, 1)
    assert os.path.basename(rep["errors"][0].split(",")[0]) == "enrolments_2026-03-02.csv"
