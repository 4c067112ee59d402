"""Prefect holds each campaign's deployments: created, paused, run and read through its API.

`prefect.yaml` keeps what is common to every campaign (the pool, the working directory, the
retention flow, the stages on demand); a campaign's own deployments come from its definition
(`campaigns.app.scheduler.deployment_specs`) and are written here, named `<flow>/<campaign>`.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from campaigns.app.scheduler import DeploymentSpec, RunInfo, Scheduled, campaign_tag
from campaigns.clock import paris_today
from campaigns.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
POOL = "relance"


def _client(api_url: str) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api_url)


def _flow_schema(entrypoint: str) -> dict[str, Any]:
    """The flow's parameter schema, so the UI offers its form and runs are checked."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    flow: Any = load_flow_from_entrypoint(str(ROOT / entrypoint))
    schema: dict[str, Any] = parameter_schema(flow).model_dump_for_openapi()
    return schema


class PrefectScheduler:
    """A campaign's schedules and runs on a Prefect server (`PREFECT_API_URL`)."""

    def __init__(
        self,
        api_url: str,
        *,
        pool: str = POOL,
        home: Path | None = None,
        data_dir: Path | None = None,
        ui_url: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.pool = pool
        self.home = home or ROOT
        self.data_dir = (data_dir or get_settings().data_dir).resolve()
        self.ui_url = (ui_url or self.api_url.removesuffix("/api")).rstrip("/")

    def apply(self, specs: list[DeploymentSpec], *, active: bool) -> list[Scheduled]:
        """Create or update each deployment (Prefect upserts by flow and name)."""
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import RRuleSchedule

        done: list[Scheduled] = []
        with _client(self.api_url) as client:
            for spec in specs:
                flow_id = client.create_flow_from_name(spec.flow)
                schedules = (
                    []
                    if spec.rrule is None
                    else [
                        DeploymentScheduleCreate(
                            schedule=RRuleSchedule(rrule=spec.rrule, timezone="Europe/Paris"),
                            active=True,
                        )
                    ]
                )
                dep_id = client.create_deployment(
                    flow_id=flow_id,
                    name=spec.campaign_id,
                    description=spec.description,
                    entrypoint=spec.entrypoint,
                    work_pool_name=self.pool,
                    work_queue_name="default",
                    parameters=spec.parameters,
                    parameter_openapi_schema=_flow_schema(spec.entrypoint),
                    enforce_parameter_schema=True,
                    schedules=schedules,
                    paused=not active,
                    concurrency_limit=spec.concurrency_limit,
                    tags=[spec.tag],
                    pull_steps=[
                        {
                            "prefect.deployments.steps.set_working_directory": {
                                "directory": str(self.home)
                            }
                        }
                    ],
                    job_variables={
                        "env": {
                            "RELANCE_HOME": str(self.home),
                            "RELANCE_DATA_DIR": str(self.data_dir),
                            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        }
                    },
                )
                if active and spec.rrule is not None:
                    _schedule_runs(client, dep_id)
                done.append(
                    Scheduled(
                        name=spec.name,
                        active=active and spec.rrule is not None,
                        next_run=None,
                    )
                )
        nxt = self._next_by_deployment(specs[0].campaign_id) if specs else {}
        return [Scheduled(d.name, d.active, nxt.get(d.name)) for d in done]

    def _deployments(self, client: Any, campaign_id: str) -> list[Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

        return list(
            client.read_deployments(
                deployment_filter=DeploymentFilter(
                    tags=DeploymentFilterTags(all_=[campaign_tag(campaign_id)])
                )
            )
        )

    def set_active(self, campaign_id: str, *, active: bool) -> int:
        """Pause or resume every deployment of the campaign (pausing drops its scheduled runs)."""
        with _client(self.api_url) as client:
            mine = self._deployments(client, campaign_id)
            for dep in mine:
                if active:
                    client.resume_deployment(dep.id)
                    if dep.schedules:
                        _schedule_runs(client, dep.id)
                else:
                    client.pause_deployment(dep.id)
            if not active and mine:
                _drop_scheduled_runs(client, [dep.id for dep in mine])
        return len(mine)

    def launch_now(self, campaign_id: str) -> str:
        """A run of the campaign's day, starting now."""
        from prefect.exceptions import ObjectNotFound

        with _client(self.api_url) as client:
            try:
                dep = client.read_deployment_by_name(f"campaign-day/{campaign_id}")
            except ObjectNotFound as e:
                raise LookupError(campaign_id) from e
            run = client.create_flow_run_from_deployment(dep.id, tags=[campaign_tag(campaign_id)])
        return str(run.id)

    def _read_runs(self, client: Any, campaign_id: str, *, scheduled: bool, limit: int) -> Any:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
            FlowRunFilterTags,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        kinds = [StateType.SCHEDULED]
        state = FlowRunFilterState(
            type=FlowRunFilterStateType(any_=kinds)
            if scheduled
            else FlowRunFilterStateType(not_any_=kinds)
        )
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[campaign_tag(campaign_id)]), state=state
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC
            if scheduled
            else FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )

    def _flow_runs(self, campaign_id: str, *, scheduled: bool, limit: int) -> list[Any]:
        with _client(self.api_url) as client:
            names = {
                d.id: f"{client.read_flow(d.flow_id).name}/{campaign_id}"
                for d in self._deployments(client, campaign_id)
            }
            runs = self._read_runs(client, campaign_id, scheduled=scheduled, limit=limit)
        return [(names.get(r.deployment_id, f"?/{campaign_id}"), r) for r in runs]

    def runs(self, campaign_id: str, *, limit: int) -> list[RunInfo]:
        """The campaign's runs that have started or ended, newest first."""
        out: list[RunInfo] = []
        for name, r in self._flow_runs(campaign_id, scheduled=False, limit=limit):
            state = r.state.type.value if r.state else "PENDING"
            out.append(
                RunInfo(
                    id=str(r.id),
                    deployment=name,
                    state=state,
                    message=r.state.message if r.state and state != "COMPLETED" else None,
                    expected_start=r.expected_start_time,
                    start=r.start_time,
                    end=r.end_time,
                    url=self.run_url(str(r.id)),
                    day=_run_day(r.parameters, r.expected_start_time),
                )
            )
        return out

    def _next_by_deployment(self, campaign_id: str) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for name, r in self._flow_runs(campaign_id, scheduled=True, limit=200):
            if _from_schedules(r) and name not in out:
                out[name] = r.expected_start_time
        return out

    def next_runs(self, campaign_ids: list[str]) -> dict[str, datetime]:
        """Each campaign's earliest scheduled run: one query per campaign, in one client."""
        out: dict[str, datetime] = {}
        with _client(self.api_url) as client:
            for cid in campaign_ids:
                runs = self._read_runs(client, cid, scheduled=True, limit=10)
                nxt = [r for r in runs if _from_schedules(r)]
                if nxt:
                    out[cid] = nxt[0].expected_start_time
        return out

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the Prefect UI."""
        return f"{self.ui_url}/runs/flow-run/{run_id}"


def _from_schedules(run: Any) -> bool:
    """A run the schedules created: a day launched by hand (scheduled now) is not the next one."""
    return bool(run.auto_scheduled) and run.expected_start_time is not None


def _schedule_runs(client: Any, deployment_id: Any) -> None:
    """Its next runs at once, as the server's scheduler would within a minute: the console
    says when the campaign runs next as soon as it is scheduled or resumed."""
    client.request("POST", "/deployments/{id}/schedule", path_params={"id": deployment_id}, json={})


def _drop_scheduled_runs(client: Any, deployment_ids: list[Any]) -> None:
    """Delete the deployments' runs the server's scheduler planned. Pausing drops them too, but
    a scheduler pass that read a deployment before the pause may still add its runs after."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
    )
    for run in runs:
        if run.auto_scheduled:
            client.delete_flow_run(run.id)


def _run_day(parameters: dict[str, Any], expected: datetime | None) -> date | None:
    given = parameters.get("day")
    if given:
        return date.fromisoformat(str(given)[:10])
    return paris_today(expected) if expected is not None else None


def scheduler_from_settings() -> PrefectScheduler | None:
    """Prefect when PREFECT_API_URL is set (environment or Prefect profile), else none."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value()
    if not url:
        return None
    return PrefectScheduler(url, ui_url=os.environ.get("PREFECT_UI_URL"))
