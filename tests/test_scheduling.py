"""A campaign's schedules (both backends, the in-memory orchestrator): its deployments come
from its own dates and times in Paris; pause, resume and end follow in the orchestrator; a
launch starts the day at once; each step audited. tests/test_prefect_server.py shows the same
on a real Prefect server."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from campaigns.app.lifecycle import end_campaign, pause_campaign, resume_campaign
from campaigns.app.scheduler import (
    MemoryScheduler,
    RunInfo,
    SchedulingError,
    deployment_specs,
    describe_next,
    follow_state,
)
from campaigns.app.scheduling import campaign_runs, launch_day, schedule_campaign
from campaigns.clock import PARIS
from campaigns.definition.model import (
    DEFINITIONS_DIR,
    DefinitionError,
    Schedule,
    parse_definition,
)
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import AuditEvent, StageRun
from campaigns.ledger.registry import register_campaign
from console.demo.simulator import at
from tests.test_campaign_lifecycle import LAUNCH, wave


def _audited(s: Session, action: str) -> list[AuditEvent]:
    return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_deployments_follow_the_campaigns_dates_and_times() -> None:
    d = wave().model_copy(update={"schedule": Schedule(day_at=time(7, 0))})
    specs = {s.name: s for s in deployment_specs(d)}
    assert set(specs) == {
        "campaign-day/vague",
        "list-validation/vague",
        "channel-dispatch/vague",
        "objectives-report/vague",
    }
    day = specs["campaign-day/vague"]
    # From the launch at 07:00 Paris, to the day after the end (the tick closes the campaign).
    assert day.rrule == "DTSTART:20261014T070000\nRRULE:FREQ=DAILY;UNTIL=20270201T235959"
    assert day.parameters == {"campaign_id": "vague"} and day.concurrency_limit == 1
    assert specs["channel-dispatch/vague"].rrule == (
        "DTSTART:20261014T133000\nRRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20270131T235959"
    )
    assert specs["channel-dispatch/vague"].parameters["require_tick"] is True
    assert all(s.tag == "campaign:vague" for s in specs.values())


def test_a_standing_campaign_runs_without_an_end() -> None:
    d = wave().model_copy(update={"dates": wave().dates.model_copy(update={"end": None})})
    (day, *_) = deployment_specs(d)
    assert "UNTIL" not in (day.rrule or "")


@pytest.mark.parametrize(
    ("block", "ok"),
    [
        ("schedule: {day_at: '07:15'}", True),
        ("schedule: {day_at: '14:00'}", False),  # after the afternoon dispatch
        ("schedule: {dispatch_at: '20:00'}", False),  # after the report
        ("schedule: {report_at: 'midi'}", False),
    ],
)
def test_a_schedule_block_is_checked_in_french(block: str, ok: bool, tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(SOPHIA_YAML.rstrip("\n") + "\n" + block + "\n")
    if ok:
        assert parse_definition(path).schedule.day_at == time(7, 15)
        return
    with pytest.raises(DefinitionError) as e:
        parse_definition(path)
    assert "schedule" in str(e.value)


def test_scheduling_pausing_ending_follow_in_the_orchestrator(engine: Engine) -> None:
    d = wave()
    sched = MemoryScheduler()
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True, now=at(LAUNCH, 8))
    with session_scope(engine) as s:
        done = schedule_campaign(
            session=s, actor="cm", definition=d, scheduler=sched, now=at(LAUNCH, 9)
        )
    assert {x.name for x in done} == set(sched.deployments) and all(x.active for x in done)
    with session_scope(engine) as s:
        pause_campaign(
            session=s, actor="cm", campaign_id=d.id, definition=d, scheduler=sched,
            now=at(LAUNCH, 10),
        )  # fmt: skip
    assert not any(active for _, active in sched.deployments.values())
    with session_scope(engine) as s:
        # Scheduled again while paused: the schedules stay off.
        again = schedule_campaign(
            session=s, actor="cm", definition=d, scheduler=sched, now=at(LAUNCH, 11)
        )
        assert not any(x.active for x in again)
        resume_campaign(session=s, actor="cm", campaign_id=d.id, scheduler=sched)
    assert all(active for _, active in sched.deployments.values())
    with session_scope(engine) as s:
        end_campaign(session=s, actor="cm", campaign_id=d.id, today=LAUNCH, scheduler=sched)
    assert not any(active for _, active in sched.deployments.values())
    with session_scope(engine) as s:
        with pytest.raises(SchedulingError, match="ne se planifie plus"):
            schedule_campaign(session=s, actor="cm", definition=d, scheduler=sched)
        assert len(_audited(s, "campaign_scheduled")) == 2
        (pause,) = _audited(s, "campaign_pause")
        assert pause.detail["schedules_changed"] == 4
        (end,) = _audited(s, "campaign_end")
        assert end.detail["schedules_changed"] == 4


def test_an_unreachable_orchestrator_never_undoes_a_pause(engine: Engine) -> None:
    class Down(MemoryScheduler):
        def set_active(self, campaign_id: str, *, active: bool) -> int:
            raise ConnectionError("refused")

    d = wave()
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True, now=at(LAUNCH, 8))
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d, scheduler=Down())
    with session_scope(engine) as s:
        (pause,) = _audited(s, "campaign_pause")
        assert pause.detail["schedules"] == "planificateur injoignable (ConnectionError)"
    assert follow_state(scheduler=None, campaign_id="x", active=True) == {
        "schedules": "aucun planificateur configuré"
    }


def test_a_launch_starts_the_day_at_once_and_is_audited(engine: Engine) -> None:
    d = wave()
    sched = MemoryScheduler()
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True, now=at(LAUNCH, 8))
    with (
        session_scope(engine) as s,
        pytest.raises(SchedulingError, match="n'est pas planifiée"),
    ):
        launch_day(session=s, actor="cm", campaign_id=d.id, scheduler=sched)
    with session_scope(engine) as s:
        schedule_campaign(session=s, actor="cm", definition=d, scheduler=sched)
        done = launch_day(session=s, actor="cm", campaign_id=d.id, scheduler=sched)
    assert sched.launched == [(d.id, done.run_id)]
    with session_scope(engine) as s:
        (event,) = _audited(s, "campaign_day_launched")
        assert event.detail == {"run": done.run_id}
        with pytest.raises(SchedulingError, match="campagne inconnue du registre"):
            launch_day(session=s, actor="cm", campaign_id="inconnue", scheduler=sched)
        with pytest.raises(SchedulingError, match="aucun serveur Prefect"):
            launch_day(session=s, actor="cm", campaign_id=d.id, scheduler=None)


def test_the_runs_carry_their_days_counts(engine: Engine) -> None:
    d = wave()
    sched = MemoryScheduler()
    day = date(2026, 10, 15)
    sched.history = [
        RunInfo(
            id="r2", deployment="campaign-day/vague", state="FAILED", message="étape « tick »",
            expected_start=None, start=None, end=None, url=None, day=day,
        ),
        RunInfo(
            id="r1", deployment="campaign-day/vague", state="COMPLETED", message=None,
            expected_start=None, start=at(LAUNCH, 6), end=at(LAUNCH, 7), url=None, day=LAUNCH,
        ),
    ]  # fmt: skip
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True, now=at(LAUNCH, 8))
        s.add(
            StageRun(
                campaign_id=d.id, stage="tick", day=LAUNCH, started_at=at(LAUNCH, 6),
                counts={"actions_written": 12},
            )
        )  # fmt: skip
    with session_scope(engine) as s:
        runs = campaign_runs(session=s, campaign_id=d.id, scheduler=sched)
    assert [r.state_label for r in runs] == ["en échec", "terminée"]
    assert runs[0].failed and runs[0].counts == {}
    assert runs[1].counts == {"tick": {"actions_written": 12}}
    assert runs[1].duration is not None and runs[1].duration.total_seconds() == 3600


def test_the_next_run_is_said_in_paris_time() -> None:
    assert describe_next(None) == "aucune exécution planifiée"
    moment = datetime(2026, 12, 3, 5, 30, tzinfo=PARIS).astimezone(PARIS)
    assert describe_next(moment) == "le 03/12/2026 à 05:30"


SOPHIA_YAML = (DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml").read_text()
