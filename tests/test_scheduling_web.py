"""A campaign's schedules through the console (both backends, the in-memory orchestrator):
schedule, launch now, pause and resume followed in the orchestrator, the runs page, a failed run
of the day on the campaign page, and the embedded default saying that nothing is scheduled."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.app.scheduler import MemoryScheduler, RunInfo
from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import AuditEvent
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from console.demo.simulator import at
from console.web.app import create_app

PW = "correct horse battery"
DAY = date(2026, 10, 14)
NOW = at(DAY, 9)
YESTERDAY = at(date(2026, 10, 13), 6)
TWO_MINUTES = timedelta(minutes=2)


@pytest.fixture
def client_for(engine: Engine, tmp_path: Path) -> Any:
    with session_scope(engine) as s:
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
        create_user(session=s, username="adv", password=PW, role="adviser")
        create_user(session=s, username="sup", password=PW, role="supervisor")
        sophia = campaign_by_id("sophia-ald8").definition
        register_campaign(session=s, definition=sophia, launched=True, now=NOW)

    def make(who: str, scheduler: MemoryScheduler | None) -> TestClient:
        app = create_app(
            Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none"),
            engine=engine,
        )
        app.state.clock = lambda: NOW
        app.state.scheduler = scheduler
        c = TestClient(app)
        token = _csrf(c, "/login")
        r = c.post(
            "/login",
            data={"username": who, "password": PW, "csrf": token, "next": "/"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        return c

    return make


def _csrf(c: TestClient, path: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)
    assert m, path
    return m.group(1)


def _post(c: TestClient, path: str) -> str:
    r = c.post(path, data={"csrf": _csrf(c, "/campaigns/sophia-ald8")}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return unquote(r.headers["location"])


def _audited(engine: Engine, action: str) -> list[AuditEvent]:
    with session_scope(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_manager_schedules_launches_and_pauses_from_the_console(
    client_for: Any, engine: Engine
) -> None:
    sched = MemoryScheduler()
    c = client_for("mgr", sched)
    page = c.get("/campaigns/sophia-ald8").text
    assert "Planifier" in page and "Lancer la journée maintenant" in page
    assert "4 planifications à jour" in _post(c, "/campaigns/sophia-ald8/schedule")
    assert set(sched.deployments) == {
        "campaign-day/sophia-ald8",
        "list-validation/sophia-ald8",
        "channel-dispatch/sophia-ald8",
        "objectives-report/sophia-ald8",
    }
    told = _post(c, "/campaigns/sophia-ald8/launch")
    assert "journée de campagne démarrée" in told and "prochaine exécution" in told
    assert [cid for cid, _ in sched.launched] == ["sophia-ald8"]
    _post(c, "/campaigns/sophia-ald8/pause")
    assert not any(active for _, active in sched.deployments.values())
    _post(c, "/campaigns/sophia-ald8/resume")
    assert all(active for _, active in sched.deployments.values())
    assert len(_audited(engine, "campaign_scheduled")) == 1
    assert len(_audited(engine, "campaign_day_launched")) == 1
    (pause,) = _audited(engine, "campaign_pause")
    assert pause.detail["schedules_changed"] == 4


def test_a_failed_run_of_the_day_shows_on_the_campaign_page(
    client_for: Any, engine: Engine
) -> None:
    from campaigns.ledger.models import StageRun

    with session_scope(engine) as s:  # what the day's tick wrote, shown in words
        s.add(
            StageRun(
                campaign_id="sophia-ald8", stage="tick", day=DAY, started_at=NOW,
                finished_at=NOW, counts={"queued_call": 3, "actions_written": 3},
            )
        )  # fmt: skip
    sched = MemoryScheduler()
    sched.history = [
        RunInfo(
            id="0123456789", deployment="campaign-day/sophia-ald8", state="FAILED",
            message="l'étape « ciblage » a échoué", expected_start=NOW, start=NOW,
            end=NOW, url="http://prefect.local/runs/flow-run/0123456789", day=DAY,
        ),
        RunInfo(
            id="9876543210", deployment="campaign-day/sophia-ald8", state="COMPLETED",
            message=None, expected_start=None, start=YESTERDAY, end=YESTERDAY + TWO_MINUTES,
            url=None, day=date(2026, 10, 13),
        ),
    ]  # fmt: skip
    c = client_for("mgr", sched)
    page = c.get("/campaigns/sophia-ald8").text
    assert "Exécution en échec ce jour" in page and "ciblage" in page
    runs = c.get("/campaigns/sophia-ald8/runs").text
    assert "en échec" in runs and "terminée" in runs and "120 s" in runs
    assert "planification : mis en file : appel téléphonique 3, actions planifiées 3" in runs
    assert "http://prefect.local/runs/flow-run/0123456789" in runs
    sup = client_for("sup", sched)
    assert sup.get("/campaigns/sophia-ald8/runs").status_code == 200


def test_without_prefect_the_console_says_nothing_is_scheduled(client_for: Any) -> None:
    c = client_for("mgr", None)
    assert "aucun serveur Prefect configuré" in c.get("/campaigns/sophia-ald8").text
    assert "aucun serveur Prefect" in _post(c, "/campaigns/sophia-ald8/schedule")
    assert "aucun serveur Prefect" in _post(c, "/campaigns/sophia-ald8/launch")
    assert "aucun serveur Prefect" in c.get("/campaigns/sophia-ald8/runs").text
    # The pause holds without an orchestrator.
    assert "campagne mise en pause" in _post(c, "/campaigns/sophia-ald8/pause")


def test_an_unreachable_orchestrator_keeps_the_pages_up(client_for: Any) -> None:
    class Down(MemoryScheduler):
        def next_runs(self, campaign_ids: list[str]) -> dict[str, datetime]:
            raise ConnectionError("refused")

    c = client_for("mgr", Down())
    assert "planificateur injoignable" in c.get("/campaigns/sophia-ald8").text
    assert "planificateur injoignable" in c.get("/campaigns").text


def test_advisers_cannot_schedule_nor_read_runs(client_for: Any) -> None:
    c = client_for("adv", MemoryScheduler())
    assert c.get("/campaigns/sophia-ald8/runs").status_code == 403
    r = c.post("/campaigns/sophia-ald8/schedule", data={"csrf": "x"}, follow_redirects=False)
    assert r.status_code == 403
