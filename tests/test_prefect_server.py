"""The real thing: prefect.yaml deployed on a Prefect server, run by a process worker.

Not the ephemeral test API: a `prefect server start` whose scheduler must create the runs
(it did not with SQLAlchemy 2.1), `prefect deploy --all`, a process worker whose environment
has no database URL (the deployment carries it as a Secret block), and a PostgreSQL ledger.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, func, text
from sqlmodel import select

from tests.prefect_server import ROOT, Server, process_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ledger_url(pg_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own for the worker's ledger."""
    name = f"relance_srv_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    # The plain form an operator writes; Relance picks the psycopg driver itself.
    yield "postgresql://" + pg_url.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='{name}'")
        )
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="module")
def server(prefect_api: Server) -> Server:
    """The session's Prefect server (tests/conftest.py), shared with the console's walk."""
    return prefect_api


def _client(srv: Server) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        async def __aenter__(self) -> Any:
            self._settings = temporary_settings({PREFECT_API_URL: srv.api_url})
            self._settings.__enter__()
            self._client = get_client()
            return await self._client.__aenter__()

        async def __aexit__(self, *exc: Any) -> None:
            await self._client.__aexit__(*exc)
            self._settings.__exit__(*exc)

    return _Ctx()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _scheduled_deployments() -> set[str]:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"] for d in spec["deployments"] if d.get("schedules")}


async def _scheduled_runs_per_deployment(srv: Server) -> dict[str, int]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async with _client(srv) as client:
        out = {}
        for dep in await client.read_deployments():
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
            )
            flow = await client.read_flow(dep.flow_id)
            out[dep.name if dep.name == flow.name else f"{flow.name}/{dep.name}"] = len(runs)
        return out


async def _create_run(
    srv: Server, deployment: str, scheduled: datetime, **parameters: Any
) -> uuid.UUID:
    from prefect.states import Scheduled

    async with _client(srv) as client:
        dep = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(
            dep.id, parameters=parameters, state=Scheduled(scheduled_time=scheduled)
        )
        return run.id


async def _final_state(srv: Server, run_id: uuid.UUID, timeout: float) -> Any:
    async with _client(srv) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            await asyncio.sleep(1)
    raise AssertionError(f"flow run {run_id} not finished after {timeout} s")


async def _task_run_counts(srv: Server, run_id: uuid.UUID) -> dict[str, int]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with _client(srv) as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
        return {r.name: r.run_count for r in runs}


async def _check_deployment(srv: Server, name: str) -> None:
    """The deployment as the campaign defines it: Paris time, its dates, its parameters."""
    async with _client(srv) as client:
        dep = await client.read_deployment_by_name(name)
        assert dep.parameters == {"campaign_id": "sophia-ald8"}
        assert "campaign:sophia-ald8" in dep.tags
        assert dep.work_pool_name == "relance"
        (sched,) = dep.schedules
        assert sched.active
        assert sched.schedule.timezone == "Europe/Paris"
        assert "T063000" in sched.schedule.rrule  # the definition's schedule.day_at


async def _deployment_paused(srv: Server, name: str) -> bool:
    async with _client(srv) as client:
        return bool((await client.read_deployment_by_name(name)).paused)


async def _save_secret(srv: Server, name: str, value: str) -> None:
    from prefect.blocks.system import Secret

    async with _client(srv):
        await Secret(value=value).save(name, overwrite=True)


def _paris_morning(day: date) -> datetime:
    from campaigns.clock import paris_moment

    return paris_moment(day, datetime.min.time().replace(hour=6, minute=30)).astimezone(UTC)


def test_prefect_yaml_scheduled_and_run_by_a_worker(
    server: Server, ledger_url: str, tmp_path: Path
) -> None:
    from campaigns.app.lifecycle import pause_campaign, resume_campaign
    from campaigns.app.scheduling import campaign_runs, launch_day, schedule_campaign
    from campaigns.clock import PARIS
    from campaigns.definition.catalog import load_campaign
    from campaigns.ledger.db import get_engine, session_scope
    from campaigns.ledger.models import Action, Member, StageRun
    from flows.runtime import DATABASE_SECRET
    from flows.scheduling import PrefectScheduler
    from targeting.synth import write_extract
    from tests.conftest import launch

    data = tmp_path / "data"
    today = datetime.now(PARIS).date()
    yesterday = today - timedelta(days=1)
    write_extract(out=data / "extract", people=30_000, seed=11, as_of=yesterday, fmt="parquet")

    server.cli("deploy", "--all", env={"RELANCE_HOME": str(ROOT), "RELANCE_DATA_DIR": str(data)})
    _run(_save_secret(server, DATABASE_SECRET, ledger_url))

    # The campaign's own deployments come from its definition, through Prefect's API.
    engine = get_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://"))
    scheduler = PrefectScheduler(server.api_url, home=ROOT, data_dir=data)
    definition = load_campaign("sophia-ald8").definition
    with session_scope(engine) as s:
        scheduled = schedule_campaign(
            session=s, actor="test-manager", definition=definition, scheduler=scheduler
        )
    assert {d.name for d in scheduled} == {
        "campaign-day/sophia-ald8",
        "list-validation/sophia-ald8",
        "channel-dispatch/sophia-ald8",
        "objectives-report/sophia-ald8",
    }
    assert all(d.active for d in scheduled)
    _run(_check_deployment(server, "campaign-day/sophia-ald8"))

    # The server's scheduler creates runs for every scheduled deployment, the campaign's included.
    expected = _scheduled_deployments() | {d.name for d in scheduled}
    deadline = time.monotonic() + 90
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = _run(_scheduled_runs_per_deployment(server))
        if all(counts.get(name, 0) > 0 for name in expected):
            break
        time.sleep(2)
    assert expected <= {n for n, c in counts.items() if c > 0}, counts
    assert "retention" in expected
    nxt = scheduler.next_runs(["sophia-ald8"])["sophia-ald8"]
    assert nxt.astimezone(PARIS).strftime("%H:%M") in ("06:30", "06:45", "13:30", "19:00")

    with process_worker(server, "relance", {}, tmp_path / "worker.log"):
        # A run scheduled yesterday morning and started late processes yesterday, not today.
        late = _run(_create_run(server, "campaign-day/sophia-ald8", _paris_morning(yesterday)))
        run = _run(_final_state(server, late, timeout=600))
        worker_log = (tmp_path / "worker.log").read_text()[-4000:]
        assert run.state.is_completed(), (run.state.message, worker_log)

        with session_scope(engine) as s:
            days = set(s.exec(select(StageRun.day)).all())
            pending = s.exec(select(func.count()).select_from(Member)).one()
        assert days == {yesterday}
        assert pending > 0

        # The list approved, today's run (scheduled now) contacts people; time it.
        launch(engine, "sophia-ald8")
        started = datetime.now(UTC)
        now_run = _run(_create_run(server, "campaign-day/sophia-ald8", started))
        run = _run(_final_state(server, now_run, timeout=600))
        assert run.state.is_completed(), run.state.message
        elapsed = (run.end_time - started).total_seconds()
        with session_scope(engine) as s:
            assert s.exec(select(func.count()).select_from(Action)).one() > 0
            ticked = set(s.exec(select(StageRun.day).where(StageRun.stage == "tick")).all())
        assert ticked == {yesterday, today}
        print(f"\ncampaign-day at 30,000 insured: scheduled start to Completed in {elapsed:.1f} s")

        # A day that cannot succeed fails at once, names its stage, and retries nothing.
        bad = _run(
            _create_run(
                server, "campaign-day/sophia-ald8", datetime.now(UTC), campaign_id="inconnue"
            )
        )
        run = _run(_final_state(server, bad, timeout=300))
        assert run.state.is_failed()
        assert "vérifications" in (run.state.message or "")
        runs = _run(_task_run_counts(server, bad))
        assert runs and all(n == 1 for n in runs.values()), runs

        # The campaign manager's view of the runs: the day above, its state, its day's counts.
        with session_scope(engine) as s:
            seen = campaign_runs(session=s, campaign_id="sophia-ald8", scheduler=scheduler)
        assert any(r.deployment == "campaign-day/sophia-ald8" and r.failed for r in seen)
        done = [r for r in seen if r.state == "COMPLETED" and r.day == today]
        assert done and "tick" in done[0].counts, seen
        assert done[0].url and done[0].url.endswith(done[0].id)

    # Paused: every schedule of the campaign off in Prefect; resumed: back on.
    with session_scope(engine) as s:
        pause_campaign(
            session=s, actor="test-manager", campaign_id="sophia-ald8", scheduler=scheduler
        )
    assert _run(_deployment_paused(server, "channel-dispatch/sophia-ald8"))
    with session_scope(engine) as s:
        resume_campaign(
            session=s, actor="test-manager", campaign_id="sophia-ald8", scheduler=scheduler
        )
    assert not _run(_deployment_paused(server, "channel-dispatch/sophia-ald8"))

    # Launch: a run of the day created at once, its next run said.
    with session_scope(engine) as s:
        launched = launch_day(
            session=s, actor="test-manager", campaign_id="sophia-ald8", scheduler=scheduler
        )
    assert launched.run_id and launched.next_run is not None


@pytest.fixture
def wave_ledger(pg_url: str) -> Iterator[str]:
    """A PostgreSQL ledger of its own for the partitioned tick."""
    name = f"relance_part_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(
            text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='{name}'")
        )
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


async def _only_partitions(srv: Server) -> None:
    """Pause every other deployment and drop its scheduled runs: the workers take only these."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async with _client(srv) as client:
        for dep in await client.read_deployments():
            if dep.name != "cascade-tick-partition":
                await client.pause_deployment(dep.id)
        scheduled = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            )
        )
        for run in scheduled:
            await client.delete_flow_run(run.id)


async def _partition_runs(srv: Server, parent: uuid.UUID) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with _client(srv) as client:
        return list(
            await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
                )
            )
        )


def test_two_workers_share_the_partitions_of_a_tick(
    server: Server, wave_ledger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two process workers on one pool share a tick's partitions; the ledger is the one a
    single whole tick writes."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_LOGGING_TO_API_ENABLED,
        temporary_settings,
    )

    from campaigns.app import stages
    from campaigns.ledger.db import make_engine, upgrade
    from campaigns.settings import get_settings
    from flows.daily import cascade_tick_partitioned
    from targeting.synth import write_extract
    from tests.test_partitions import CAMPAIGN, CID, DAY, _ledger, _members

    extract = tmp_path / "x"
    write_extract(out=extract, people=3_000, seed=5, as_of=DAY, fmt="parquet")
    reference = make_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    upgrade(reference)
    _members(reference, extract)
    stages.tick_stage(engine=reference, campaign=CAMPAIGN, day=DAY)

    engine = make_engine(wave_ledger)
    upgrade(engine)
    _members(engine, extract)

    server.cli("work-pool", "create", "relance", "--type", "process", "--overwrite")
    server.cli(
        "deploy", "--all", env={"RELANCE_HOME": str(ROOT), "RELANCE_DATA_DIR": str(tmp_path)}
    )
    _run(_only_partitions(server))
    env = {"RELANCE_DATABASE_URL": wave_ledger}
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    monkeypatch.setenv("RELANCE_DATABASE_URL", wave_ledger)
    get_settings.cache_clear()
    # One flow run at a time each: a worker busy with a partition leaves the next to the other.
    with (
        process_worker(server, "relance", env, logs[0], "--limit", "1", "--name", "worker-a"),
        process_worker(server, "relance", env, logs[1], "--limit", "1", "--name", "worker-b"),
        # the parent runs here: its logs stay here (the server stops before they would be sent)
        temporary_settings(
            {PREFECT_API_URL: server.api_url, PREFECT_LOGGING_TO_API_ENABLED: False}
        ),
    ):
        state = cascade_tick_partitioned(
            campaign_id=CID, parts=4, day=DAY, poll_seconds=1.0, return_state=True
        )
        assert state.is_completed(), (state.message, [p.read_text()[-3000:] for p in logs])
        total = state.result()
        children = _run(_partition_runs(server, state.state_details.flow_run_id))
    get_settings.cache_clear()

    assert total["partitions"] == 4 and total["actions_written"] > 0
    assert len(children) == 4 and all(r.state.is_completed() for r in children)
    ran_by = [{str(r.id) for r in children if str(r.id) in log.read_text()} for log in logs]
    assert all(ran_by), f"one worker ran every partition: {ran_by}"
    assert ran_by[0] | ran_by[1] == {str(r.id) for r in children}
    assert _ledger(engine) == _ledger(reference)
    engine.dispose()
    reference.dispose()
