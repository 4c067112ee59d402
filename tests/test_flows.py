"""The Prefect flows, end to end on a small synthetic extract, under one test harness."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import Action, Member, StageRun
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


def test_a_failed_stage_stops_the_day_and_is_named(
    prefect_harness: None, small_extract: Path, platform: Path, tmp_path: Path
) -> None:
    from flows.daily import campaign_day

    # An extract whose people table is broken: targeting fails, nothing after it runs.
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in small_extract.iterdir():
        (broken / f.name).symlink_to(f)
    people = next(broken.glob("ir_ben_r*"))
    people.unlink()
    people.write_bytes(b"PAR1 not really parquet")
    state = campaign_day(
        campaign_id="sophia-ald8", extract_dir=str(broken), day=AS_OF, return_state=True
    )
    assert state.is_failed()
    assert "« ciblage »" in (state.message or "")
    assert _count(StageRun, StageRun.stage == "tick") == 0
    assert _count(Action) == 0


def test_configuration_errors_fail_at_once_without_retry(
    prefect_harness: None, platform: Path
) -> None:
    from flows.daily import campaign_day

    state = campaign_day(
        campaign_id="sophia-ald8",
        extract_dir=str(platform / "nowhere"),
        day=AS_OF,
        return_state=True,
    )
    assert state.is_failed()
    assert "« vérifications »" in (state.message or "")
    assert "extrait introuvable" in (state.message or "")


def test_a_flow_without_a_database_refuses_to_start(
    prefect_harness: None, platform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaigns.settings import get_settings
    from flows.daily import cascade_tick

    monkeypatch.delenv("RELANCE_DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    state = cascade_tick(campaign_id="sophia-ald8", day=AS_OF, return_state=True)
    assert state.is_failed()
    assert "RELANCE_DATABASE_URL" in (state.message or "")
    assert not (platform / "relance.db").exists()


def test_the_database_url_from_a_secret_block(
    prefect_harness: None, platform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    from campaigns.settings import get_settings
    from flows.daily import cascade_tick
    from flows.runtime import DATABASE_SECRET

    url = f"sqlite:///{platform / 'from-secret.db'}"
    monkeypatch.delenv("RELANCE_DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    Secret(value=url).save(DATABASE_SECRET, overwrite=True)
    try:
        state = cascade_tick(campaign_id="sophia-ald8", day=AS_OF, return_state=True)
    finally:
        Secret.delete(DATABASE_SECRET)
    assert state.is_completed(), state.message
    assert (platform / "from-secret.db").exists()


def test_no_dispatch_on_a_public_holiday(prefect_harness: None, platform: Path) -> None:
    from flows.daily import channel_dispatch

    christmas = date(2026, 12, 25)
    out = channel_dispatch(campaign_id="sophia-ald8", day=christmas)
    assert {out[ch]["non_ouvre"] for ch in ("mailbox", "email", "letter")} == {1}
    assert _count(StageRun, StageRun.stage.startswith("dispatch")) == 0  # type: ignore[attr-defined]


def test_the_afternoon_pass_waits_for_the_days_tick(prefect_harness: None, platform: Path) -> None:
    from flows.daily import cascade_tick, channel_dispatch

    state = channel_dispatch(
        campaign_id="sophia-ald8", day=AS_OF, require_tick=True, return_state=True
    )
    assert state.is_failed()
    assert "planification" in (state.message or "")
    cascade_tick(campaign_id="sophia-ald8", day=AS_OF)
    out = channel_dispatch(campaign_id="sophia-ald8", day=AS_OF, require_tick=True)
    assert "mailbox" in out


def test_the_day_is_the_scheduled_start_in_paris(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    import prefect.runtime.flow_run as fr

    from flows.runtime import run_day

    # 23:30 UTC on 31 December is already 1 January in Paris.
    monkeypatch.setitem(
        fr.FIELDS, "scheduled_start_time", lambda: datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    )
    assert run_day(None) == date(2027, 1, 1)
    assert run_day(date(2026, 3, 2)) == date(2026, 3, 2)
