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

from tests.prefect_server import ROOT, Server, prefect_server, process_worker

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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as srv:
        yield srv


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
            out[dep.name] = len(runs)
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
    from campaigns.clock import PARIS
    from campaigns.db import get_engine, session_scope
    from campaigns.models import Action, Member, StageRun
    from flows.runtime import DATABASE_SECRET
    from targeting.synth import write_extract
    from tests.conftest import launch

    data = tmp_path / "data"
    today = datetime.now(PARIS).date()
    yesterday = today - timedelta(days=1)
    write_extract(out=data / "extract", people=30_000, seed=11, as_of=yesterday, fmt="parquet")

    server.cli("work-pool", "create", "relance", "--type", "process")
    server.cli("deploy", "--all", env={"RELANCE_HOME": str(ROOT), "RELANCE_DATA_DIR": str(data)})
    _run(_save_secret(server, DATABASE_SECRET, ledger_url))

    # The server's scheduler creates runs for every scheduled deployment of prefect.yaml.
    expected = _scheduled_deployments()
    deadline = time.monotonic() + 90
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = _run(_scheduled_runs_per_deployment(server))
        if all(counts.get(name, 0) > 0 for name in expected):
            break
        time.sleep(2)
    assert expected <= {n for n, c in counts.items() if c > 0}, counts
    assert {"campaign-day", "channel-dispatch", "list-validation", "retention"} <= expected

    with process_worker(server, "relance", {}, tmp_path / "worker.log"):
        # A run scheduled yesterday morning and started late processes yesterday, not today.
        late = _run(_create_run(server, "campaign-day/campaign-day", _paris_morning(yesterday)))
        run = _run(_final_state(server, late, timeout=600))
        worker_log = (tmp_path / "worker.log").read_text()[-4000:]
        assert run.state.is_completed(), (run.state.message, worker_log)

        engine = get_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://"))
        with session_scope(engine) as s:
            days = set(s.exec(select(StageRun.day)).all())
            pending = s.exec(select(func.count()).select_from(Member)).one()
        assert days == {yesterday}
        assert pending > 0

        # The list approved, today's run (scheduled now) contacts people; time it.
        launch(engine, "sophia-ald8")
        started = datetime.now(UTC)
        now_run = _run(_create_run(server, "campaign-day/campaign-day", started))
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
                server, "campaign-day/campaign-day", datetime.now(UTC), campaign_id="inconnue"
            )
        )
        run = _run(_final_state(server, bad, timeout=300))
        assert run.state.is_failed()
        assert "vérifications" in (run.state.message or "")
        runs = _run(_task_run_counts(server, bad))
        assert runs and all(n == 1 for n in runs.values()), runs
