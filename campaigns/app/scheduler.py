"""The orchestrator port a campaign's schedules go through, with its in-memory fake.

The campaign's own definition says when its flows run (`schedule:` block, Paris time) and
between which dates (`dates:`); `deployment_specs` turns that into one deployment per flow,
named `<flow>/<campaign id>`. Prefect holds them in production
(`flows.scheduling.PrefectScheduler`), `MemoryScheduler` in tests, and nothing in the embedded
default, where the use cases (`campaigns.app.scheduling`) say so in French.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

from campaigns.clock import PARIS
from campaigns.definition.model import CampaignDefinition

WEEKDAYS = "MO,TU,WE,TH,FR"

RUN_STATE_LABELS: dict[str, str] = {
    "SCHEDULED": "planifiée",
    "PENDING": "en attente",
    "RUNNING": "en cours",
    "COMPLETED": "terminée",
    "FAILED": "en échec",
    "CRASHED": "interrompue",
    "CANCELLED": "annulée",
    "CANCELLING": "en annulation",
    "PAUSED": "suspendue",
}

NO_SCHEDULER = (
    "aucun serveur Prefect n'est configuré (PREFECT_API_URL) : rien n'est planifié ; "
    "la journée se lance à la main avec `relance demo` ou `prefect deployment run`"
)


class SchedulingError(ValueError):
    """A schedule the campaign or the orchestrator does not allow (message in French)."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One of a campaign's deployments, as the orchestrator should hold it."""

    flow: str
    entrypoint: str
    campaign_id: str
    description: str
    parameters: dict[str, Any]
    # iCalendar recurrence in Paris time (DTSTART/UNTIL from the campaign's dates); None: on demand.
    rrule: str | None
    concurrency_limit: int | None = None

    @property
    def name(self) -> str:
        return f"{self.flow}/{self.campaign_id}"

    @property
    def tag(self) -> str:
        return campaign_tag(self.campaign_id)


@dataclass(frozen=True)
class Scheduled:
    """A deployment as the orchestrator holds it now."""

    name: str
    active: bool
    next_run: datetime | None


@dataclass(frozen=True)
class RunInfo:
    """One flow run of a campaign, as its manager follows it."""

    id: str
    deployment: str
    state: str
    message: str | None
    expected_start: datetime | None
    start: datetime | None
    end: datetime | None
    url: str | None
    day: date | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def state_label(self) -> str:
        return RUN_STATE_LABELS.get(self.state, self.state.lower())

    @property
    def failed(self) -> bool:
        return self.state in ("FAILED", "CRASHED")

    @property
    def duration(self) -> timedelta | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass(frozen=True)
class Launch:
    """A day started at once, and what comes next."""

    run_id: str
    url: str | None
    next_run: datetime | None


class Scheduler(Protocol):
    """The orchestrator that holds a campaign's schedules and runs."""

    def apply(self, specs: list[DeploymentSpec], *, active: bool) -> list[Scheduled]:
        """Create or update these deployments; their schedules on or off."""
        ...

    def set_active(self, campaign_id: str, *, active: bool) -> int:
        """Turn every schedule of the campaign on or off; how many deployments."""
        ...

    def launch_now(self, campaign_id: str) -> str:
        """Start the campaign's day at once; the run's id."""
        ...

    def runs(self, campaign_id: str, *, limit: int) -> list[RunInfo]:
        """The campaign's flow runs, newest first."""
        ...

    def next_runs(self, campaign_ids: list[str]) -> dict[str, datetime]:
        """Each campaign's next scheduled run (absent: nothing scheduled)."""
        ...

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the orchestrator's UI."""
        ...


def campaign_tag(campaign_id: str) -> str:
    """The tag every deployment and run of the campaign carries."""
    return f"campaign:{campaign_id}"


def _rrule(start: date, end: date | None, at: time, byday: str | None = None) -> str:
    dtstart = datetime.combine(start, at).strftime("%Y%m%dT%H%M%S")
    rule = "FREQ=DAILY" if byday is None else f"FREQ=WEEKLY;BYDAY={byday}"
    if end is not None:
        rule += ";UNTIL=" + datetime.combine(end, time(23, 59, 59)).strftime("%Y%m%dT%H%M%S")
    return f"DTSTART:{dtstart}\nRRULE:{rule}"


def deployment_specs(definition: CampaignDefinition) -> list[DeploymentSpec]:
    """The campaign's deployments, from its own dates and schedule (times in Europe/Paris)."""
    cid, when, dates = definition.id, definition.schedule, definition.dates
    # The last day is one past the end: the day after, the tick ends the campaign and the report
    # gives its final figures.
    last = None if dates.end is None else dates.end + timedelta(days=1)
    base = {"campaign_id": cid}
    return [
        DeploymentSpec(
            flow="campaign-day",
            entrypoint="flows/daily.py:campaign_day",
            campaign_id=cid,
            description=f"{definition.name} : la journée (flux, ciblage, validation, cascade, "
            "envois, rapport)",
            parameters=base,
            rrule=_rrule(dates.start, last, when.day_at),
            concurrency_limit=1,
        ),
        DeploymentSpec(
            flow="list-validation",
            entrypoint="flows/validation.py:list_validation",
            campaign_id=cid,
            description=f"{definition.name} : attente de la décision sur la liste",
            parameters=base,
            rrule=_rrule(dates.start, dates.end, when.validation_at),
            concurrency_limit=1,
        ),
        DeploymentSpec(
            flow="channel-dispatch",
            entrypoint="flows/daily.py:channel_dispatch",
            campaign_id=cid,
            description=f"{definition.name} : envois de l'après-midi (jours ouvrés)",
            parameters={**base, "require_tick": True},
            rrule=_rrule(dates.start, dates.end, when.dispatch_at, WEEKDAYS),
        ),
        DeploymentSpec(
            flow="objectives-report",
            entrypoint="flows/daily.py:objectives_report",
            campaign_id=cid,
            description=f"{definition.name} : adhésions face aux objectifs, par échelon",
            parameters=base,
            rrule=_rrule(dates.start, last, when.report_at),
        ),
    ]


def follow_state(*, scheduler: Scheduler | None, campaign_id: str, active: bool) -> dict[str, Any]:
    """Turn the campaign's schedules on or off after a pause, a resume or an end.

    What to put in the audit event: how many deployments changed, or why none could.
    """
    if scheduler is None:
        return {"schedules": "aucun planificateur configuré"}
    try:
        return {"schedules_changed": scheduler.set_active(campaign_id, active=active)}
    except Exception as e:  # the ledger's pause holds even with the orchestrator down
        return {"schedules": f"planificateur injoignable ({type(e).__name__})"}


def describe_next(next_run: datetime | None) -> str:
    """The next run in words, Paris time."""
    if next_run is None:
        return "aucune exécution planifiée"
    at = next_run.astimezone(PARIS)
    return f"le {at:%d/%m/%Y} à {at:%H:%M}"


class MemoryScheduler:
    """An orchestrator in memory, for tests and for trying the console without a server."""

    def __init__(self) -> None:
        self.deployments: dict[str, tuple[DeploymentSpec, bool]] = {}
        self.launched: list[tuple[str, str]] = []
        self.history: list[RunInfo] = []

    def apply(self, specs: list[DeploymentSpec], *, active: bool) -> list[Scheduled]:
        """Keep the specs."""
        for spec in specs:
            self.deployments[spec.name] = (spec, active and spec.rrule is not None)
        return [
            Scheduled(name=s.name, active=self.deployments[s.name][1], next_run=None) for s in specs
        ]

    def set_active(self, campaign_id: str, *, active: bool) -> int:
        """Flip the campaign's schedules."""
        mine = [n for n, (s, _) in self.deployments.items() if s.campaign_id == campaign_id]
        for n in mine:
            spec = self.deployments[n][0]
            self.deployments[n] = (spec, active and spec.rrule is not None)
        return len(mine)

    def launch_now(self, campaign_id: str) -> str:
        """Record a run of the campaign's day."""
        if f"campaign-day/{campaign_id}" not in self.deployments:
            raise LookupError(campaign_id)
        run_id = f"run-{len(self.launched) + 1}"
        self.launched.append((campaign_id, run_id))
        return run_id

    def runs(self, campaign_id: str, *, limit: int) -> list[RunInfo]:
        """The runs recorded in `history` for the campaign."""
        mine = [r for r in self.history if r.deployment.endswith(f"/{campaign_id}")]
        return mine[:limit]

    def next_runs(self, campaign_ids: list[str]) -> dict[str, datetime]:
        """Nothing is ever due in memory."""
        return {}

    def run_url(self, run_id: str) -> str | None:
        """No UI."""
        return None
