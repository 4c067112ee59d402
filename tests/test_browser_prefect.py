"""A campaign manager in Chromium, against a real Prefect server (not the test API): a draft
made from a shipped campaign, (preview), ready, scheduled, its list signed off by the échelon
leads and approved, its day launched, paused, resumed and ended. After each step Prefect's own
client says what the console did: the campaign's deployments (Paris time), paused, resumed,
and the flow run the launch created. A screenshot of each page goes to test-artifacts/screens/
(bp-*.png)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import select

from campaigns.cascade.membership import admit_targets
from campaigns.clock import paris_today
from campaigns.definition import files as definition_files
from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.ledger.models import AuditEvent, Campaign, Member
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from targeting.synth import write_extract
from tests.factories import population
from tests.prefect_server import Server
from tests.test_browser import CHROMIUM, PW, browser, login
from tests.test_browser import _free_port as free_port
from tests.test_browser_day import SCREENS, screen

__all__ = ["browser"]  # the module's Chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

CID = "walk-prefect"
FLOWS = ("campaign-day", "list-validation", "channel-dispatch", "objectives-report")
TAG = f"campaign:{CID}"
# The next run as the console says it: a time of the definition's `schedule:` (Paris).
NEXT_AT = r"prochaine exécution (planifiée )?le \d\d/\d\d/\d{4} à (06:30|06:45|13:30|19:00)"


@pytest.fixture(scope="module")
def console(
    prefect_api: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any]]:
    """The console as an operator runs it with Prefect: PREFECT_API_URL set, nothing injected."""
    import uvicorn

    from console.web.app import create_app

    tmp = tmp_path_factory.mktemp("bp-console")
    mp = pytest.MonkeyPatch()
    mp.setattr(definition_files, "console_root", lambda: tmp / "campaigns")
    mp.setenv("PREFECT_API_URL", prefect_api.api_url)
    engine = make_engine(f"sqlite:///{tmp / 'relance.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
        for echelon in ("93", "75"):
            create_user(
                session=s, username=f"lead{echelon}", password=PW, role="echelon_lead",
                echelon=echelon,
            )  # fmt: skip
    # The day's extract the preview counts the audience on.
    write_extract(out=tmp / "extract", people=3_000, seed=3, as_of=paris_today(), fmt="parquet")
    app = create_app(Settings(data_dir=tmp, secret_key="p" * 40), engine=engine)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", engine
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        _delete_runs(prefect_api)  # a worker of a later test must not pick up our launch
        mp.undo()


@contextmanager
def _prefect(srv: Server) -> Iterator[Any]:
    """Prefect's own client, on the test session's server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: srv.api_url}), get_client(sync_client=True) as c:
        yield c


def _deployments(srv: Server) -> dict[str, Any]:
    """The campaign's deployments by `<flow>/<campaign>`, as Prefect holds them."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    with _prefect(srv) as c:
        found = c.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG]))
        )
        return {f"{c.read_flow(d.flow_id).name}/{d.name}": d for d in found}


def _runs(srv: Server) -> list[Any]:
    """The campaign's flow runs (launched and scheduled by the server)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with _prefect(srv) as c:
        return list(
            c.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[TAG])))
        )


def _delete_runs(srv: Server) -> None:
    with _prefect(srv) as c:
        for r in _runs(srv):
            c.delete_flow_run(r.id)


def _check_deployments(srv: Server, *, paused: bool) -> dict[str, Any]:
    deps = _deployments(srv)
    assert set(deps) == {f"{f}/{CID}" for f in FLOWS}, sorted(deps)
    for name, d in deps.items():
        assert d.paused is paused, (name, d.paused)
        assert d.parameters["campaign_id"] == CID and d.work_pool_name == "relance"
        (sched,) = d.schedules
        assert sched.schedule.timezone == "Europe/Paris", (name, sched.schedule)
        assert "DTSTART:20200101T" in sched.schedule.rrule  # the definition's own start date
    return deps


def _auto_scheduled(srv: Server) -> list[Any]:
    return [r for r in _runs(srv) if r.auto_scheduled and r.state_type.value == "SCHEDULED"]


def _targeting(engine: Any, today: date, *, start: int, n: int, echelon: str) -> dict[str, int]:
    """What the day's targeting stage does (in-process here): register, admit the newcomers."""
    c = campaign_by_id(CID)
    targets, people = population(n, anchor=today + timedelta(days=70), start=start)
    targets["echelon"] = people["echelon"] = echelon
    with session_scope(engine) as s:
        register_campaign(session=s, definition=c.definition, folder=c.folder)
        return admit_targets(
            session=s, definition=c.definition, targets=targets, people=people, today=today
        )


def _message(page: Any) -> str:
    return str(page.inner_text(".msg")) if page.locator(".msg").count() else ""


def test_a_campaign_manager_runs_a_campaign_scheduled_by_prefect(
    console: tuple[str, Any], prefect_api: Server, browser: Any
) -> None:
    base, engine = console
    today = paris_today()
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        timings[step] = time.monotonic() - clock
        clock = time.monotonic()

    mgr = login(browser, base, "mgr")
    errors: list[str] = []
    mgr.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Draft: a copy of a shipped campaign, checked, made ready.
    mgr.goto(f"{base}/campaigns")
    screen(mgr, "bp-01-campagnes")
    mgr.click("text=Créer une campagne")
    mgr.fill("#campaign_id", CID)
    mgr.fill("#name", "Parcours Prefect")
    mgr.select_option("#origin", "sophia-ald8")
    screen(mgr, "bp-02-nouvelle")
    mgr.click("form[action='/campaigns/new'] button")
    assert mgr.url.split("?")[0].endswith(f"/drafts/{CID}")
    mgr.click("button[value=check]")
    assert "Aucun problème" in mgr.content()
    screen(mgr, "bp-03-brouillon-verifie")
    lap("brouillon")

    # Preview: the draft's audience on the day's extract, its cascade, its messages, the letter.
    mgr.click(f"a[href='/campaigns/{CID}/preview']")
    mgr.wait_for_url(f"**/campaigns/{CID}/preview")
    page = mgr.content()
    assert "Aperçu de" in page and "brouillon" in page
    assert "Éligibles par échelon" in page and "La cascade" in page
    assert "MARTIN" in page  # the sample person in the rendered messages
    pdf = mgr.locator("a[href$='.pdf?priorite=1']").first.get_attribute("href")
    assert pdf and mgr.request.get(f"{base}{pdf}").body().startswith(b"%PDF")
    screen(mgr, "bp-04-apercu")
    mgr.goto(f"{base}/drafts/{CID}")
    lap("aperçu")

    mgr.click("form[action$='/ready'] button")
    assert mgr.url.split("?")[0].endswith(f"/campaigns/{CID}")
    assert "prête" in mgr.content() and "non planifié" in mgr.content()
    assert mgr.locator(f"a[href='/campaigns/{CID}/preview']").count() == 1
    assert _deployments(prefect_api) == {}  # ready is not scheduled yet
    screen(mgr, "bp-05-prete")
    lap("prête")

    # Schedule: four deployments in Prefect, Paris time, active.
    mgr.click("form[action$='/schedule'] button")
    assert "4 planifications à jour" in _message(mgr), _message(mgr)
    assert re.search(NEXT_AT, _message(mgr)), _message(mgr)  # its runs, at once, Paris time
    _check_deployments(prefect_api, paused=False)
    assert _auto_scheduled(prefect_api)
    screen(mgr, "bp-06-planifiee")
    lap("planifier")

    # The day's targeting puts people on the list the échelons review.
    assert _targeting(engine, today, start=0, n=3, echelon="93")["pending_validation"] == 3
    assert _targeting(engine, today, start=10, n=2, echelon="75")["pending_validation"] == 2
    mgr.goto(f"{base}/campaigns/{CID}")
    assert "en validation" in mgr.content()
    screen(mgr, "bp-07-en-validation")

    # Validation: each échelon lead signs off their list, then the manager approves.
    for echelon in ("93", "75"):
        lead = login(browser, base, f"lead{echelon}")
        lead.goto(f"{base}/campaigns/{CID}/validation")
        screen(lead, f"bp-08-echelon-{echelon}")
        lead.click("#sign-off")
        assert f"liste de l'échelon {echelon} validée" in _message(lead)
        screen(lead, f"bp-09-echelon-{echelon}-validee")
        lead.context.close()
    lap("signatures des échelons")
    mgr.goto(f"{base}/campaigns/{CID}/validation")
    assert "n'ayant pas validé" not in mgr.content()
    screen(mgr, "bp-10-validation")
    assert _runs(prefect_api) == [] or all(r.auto_scheduled for r in _runs(prefect_api))
    mgr.click("#approve")
    told = _message(mgr)
    screen(mgr, "bp-11-approuvee-lancee")
    lap("approuver et lancer")
    assert "liste lancée" in told and "journée de campagne démarrée" in told, told
    assert re.search(NEXT_AT, told), told  # the next from its schedules, not the launch itself
    found = re.search(r"exécution ([0-9a-f]{8})", told)
    assert found, told
    deps = _check_deployments(prefect_api, paused=False)
    day_dep = deps[f"campaign-day/{CID}"].id
    launched = [r for r in _runs(prefect_api) if not r.auto_scheduled]
    assert len(launched) == 1, launched
    (run,) = launched
    assert str(run.id).startswith(found.group(1)) and run.deployment_id == day_dep
    assert run.parameters == {"campaign_id": CID}
    with session_scope(engine) as s:
        assert s.get(Campaign, CID).launched_at is not None  # type: ignore[union-attr]
    mgr.goto(f"{base}/campaigns/{CID}")
    assert "en cours" in mgr.content()
    screen(mgr, "bp-12-en-cours")
    mgr.goto(f"{base}/campaigns/{CID}/runs")
    screen(mgr, "bp-13-executions")

    # Pause: every deployment paused in Prefect, its upcoming runs dropped; nobody new admitted.
    mgr.goto(f"{base}/campaigns/{CID}")
    mgr.click("form[action$='/pause'] button")
    assert "en pause" in mgr.content()
    screen(mgr, "bp-14-en-pause")
    lap("suspendre")
    _check_deployments(prefect_api, paused=True)
    assert _auto_scheduled(prefect_api) == []
    held = _targeting(engine, today, start=20, n=2, echelon="93")
    assert held["admitted"] == 0 and held["not_admitted_paused"] == 2

    # Resume: deployments back on; the newcomers held out by the pause come in.
    mgr.click("form[action$='/resume'] button")
    assert "campagne reprise" in mgr.content()
    screen(mgr, "bp-15-reprise")
    lap("reprendre")
    _check_deployments(prefect_api, paused=False)
    assert _auto_scheduled(prefect_api)  # its upcoming runs back at once
    assert _targeting(engine, today, start=20, n=2, echelon="93")["admitted"] == 2

    # End, with its reason: schedules off for good, the campaign ended.
    mgr.click("text=Terminer…")
    mgr.fill("input[name=reason]", "fin du parcours de test")
    screen(mgr, "bp-16-terminer-motif")
    mgr.click("form[action$='/end'] button")
    assert "campagne terminée" in mgr.content()
    screen(mgr, "bp-17-terminee")
    lap("terminer")
    _check_deployments(prefect_api, paused=True)
    assert _auto_scheduled(prefect_api) == []
    with session_scope(engine) as s:
        row = s.get(Campaign, CID)
        assert row is not None and row.ended_at is not None
        members = s.exec(select(Member).where(Member.campaign_id == CID)).all()
        assert len(members) == 7 and {m.status for m in members} == {"completed"}
        end = s.exec(select(AuditEvent).where(AuditEvent.action == "campaign_end")).one()
        assert end.detail["reason"] == "fin du parcours de test"
        assert end.detail["schedules_changed"] == 4
        pause = s.exec(select(AuditEvent).where(AuditEvent.action == "campaign_pause")).one()
        assert pause.detail["schedules_changed"] == 4
    assert [e for e in errors if "Content Security Policy" in e or "Refused" in e] == []
    shots = sorted(p.name for p in SCREENS.glob("bp-*.png"))
    assert len(shots) >= 17, shots
    print("\n" + "\n".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
