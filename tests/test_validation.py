"""Local validation before launch, on SQLite and PostgreSQL; and the flow that waits for it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.objects import StateType
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.cascade.membership import admit_targets
from campaigns.cascade.review import (
    ValidationError,
    approve,
    exclude,
    expire_overdue,
    list_status,
    pending_list,
    reject,
    revoke_exclusion,
    sign_off,
)
from campaigns.cascade.tick import tick
from campaigns.clock import paris_today
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import (
    ACTIVE,
    EXITED,
    PENDING,
    Action,
    AuditEvent,
    Campaign,
    Member,
    MemberEvent,
    TargetList,
)
from campaigns.ledger.registry import register_campaign
from tests.factories import population

D = load_campaign("sophia-ald8").definition
TODAY = date(2026, 3, 2)
ANCHOR = TODAY + timedelta(days=70)


def admit(engine: Engine, n: int = 6, start: int = 0, today: date = TODAY, **kw: Any) -> None:
    targets, people = population(n, anchor=ANCHOR, start=start)
    for k, v in kw.items():
        targets[k] = v
        if k == "echelon":
            people[k] = v
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=today)


def members(engine: Engine) -> list[Member]:
    with session_scope(engine) as s:
        return list(s.exec(select(Member).order_by(Member.id)))  # type: ignore[arg-type]


def the_list(s: Any) -> TargetList:
    lst = pending_list(session=s, campaign_id=D.id)
    assert lst is not None
    return lst


def test_before_launch_people_wait_and_nobody_is_contacted(engine: Engine) -> None:
    admit(engine, 4, echelon="93")
    admit(engine, 2, start=10, today=TODAY + timedelta(days=1), echelon="75")
    assert {m.status for m in members(engine)} == {PENDING}
    tick(engine=engine, definition=D, today=TODAY + timedelta(days=15))
    with session_scope(engine) as s:
        assert s.exec(select(Action)).first() is None
        lst = the_list(s)
        assert (lst.created_on, lst.deadline) == (TODAY, TODAY + timedelta(days=5))
        status = list_status(session=s, target_list=lst)
        assert {e: v["listed"] for e, v in status.per_echelon.items()} == {"75": 2, "93": 4}
        assert status.missing_signoffs == ["75", "93"]


def test_exclusions_have_a_fixed_reason_a_scope_and_can_be_revoked(engine: Engine) -> None:
    admit(engine, 3, echelon="93")
    m = members(engine)[0]
    with session_scope(engine) as s:
        lst = the_list(s)
        with pytest.raises(ValidationError, match="unknown reason"):
            exclude(session=s, target_list=lst, member_id=m.id or 0, reason="bored", by="a")
        with pytest.raises(ValidationError, match="needs a note"):
            exclude(session=s, target_list=lst, member_id=m.id or 0, reason="other", by="a")
        with pytest.raises(PermissionError, match="échelon 75 cannot act on échelon 93"):
            exclude(
                session=s,
                target_list=lst,
                member_id=m.id or 0,
                reason="hospitalised",
                by="a",
                scope="75",
            )
        first = exclude(
            session=s,
            target_list=lst,
            member_id=m.id or 0,
            reason="hospitalised",
            by="a",
            scope="93",
        )
        again = exclude(
            session=s, target_list=lst, member_id=m.id or 0, reason="hospitalised", by="b"
        )
        assert first.id == again.id
        assert revoke_exclusion(session=s, target_list=lst, member_id=m.id or 0, by="c")
        assert not revoke_exclusion(session=s, target_list=lst, member_id=m.id or 0, by="c")
        exclude(session=s, target_list=lst, member_id=m.id or 0, reason="already_followed", by="d")
        kinds = [e.kind for e in s.exec(select(MemberEvent).where(MemberEvent.member_id == m.id))]
        assert kinds.count("excluded") == 2 and kinds.count("exclusion_revoked") == 1


def test_approval_needs_every_echelon_then_launches_and_records_counts(engine: Engine) -> None:
    admit(engine, 3, echelon="93")
    admit(engine, 2, start=10, echelon="75")
    excluded = members(engine)[0]
    with session_scope(engine) as s:
        lst = the_list(s)
        exclude(
            session=s, target_list=lst, member_id=excluded.id or 0, reason="hospitalised", by="x"
        )
        sign_off(session=s, target_list=lst, echelon="93", by="lead-93")
        with pytest.raises(
            ValidationError, match="chaque échelon doit avoir validé sa liste ; manque : 75"
        ):
            approve(session=s, target_list=lst, by="manager", today=TODAY)
        sign_off(session=s, target_list=lst, echelon="75", by="lead-75")
        counts = approve(session=s, target_list=lst, by="manager", today=TODAY)
        assert counts == {
            "75": {"launched": 2, "excluded": 0},
            "93": {"launched": 2, "excluded": 1},
        }
        assert (lst.state, lst.decided_by) == ("approved", "manager")
        assert s.get(Campaign, D.id).launched_at is not None  # type: ignore[union-attr]
        with pytest.raises(ValidationError, match="approved"):
            exclude(
                session=s,
                target_list=lst,
                member_id=excluded.id or 0,
                reason="other",
                by="x",
                note="n",
            )
    statuses = {m.id: (m.status, m.status_reason) for m in members(engine)}
    assert statuses[excluded.id] == (EXITED, "excluded_hospitalised")
    assert sorted(v[0] for v in statuses.values()) == [ACTIVE] * 4 + [EXITED]
    # Daily increments after launch go straight into the cascade.
    admit(engine, 1, start=20, today=TODAY + timedelta(days=2))
    assert members(engine)[-1].status == ACTIVE
    tick(engine=engine, definition=D, today=ANCHOR - timedelta(days=60))
    with session_scope(engine) as s:
        called = {a.member_id for a in s.exec(select(Action).where(Action.channel == "phone"))}
    reachable = {m.id for m in members(engine) if m.status == ACTIVE and not m.holdout}
    assert excluded.id not in called and called == reachable and len(reachable) >= 4


def test_a_list_not_approved_in_time_is_not_launched_and_says_why(engine: Engine) -> None:
    admit(engine, 3, echelon="93")
    with session_scope(engine) as s:
        sign_off(session=s, target_list=the_list(s), echelon="93", by="lead-93")
        assert expire_overdue(session=s, campaign_id=D.id, today=TODAY + timedelta(days=5)) is None
    admit(engine, 2, start=10, echelon="75", today=TODAY + timedelta(days=6))
    with session_scope(engine) as s:
        lst = s.exec(select(TargetList).order_by(TargetList.id)).first()  # type: ignore[arg-type]
        assert lst is not None
        assert lst.state == "expired"
        assert lst.reason == "not approved by its deadline 2026-03-07"
        assert s.get(Campaign, D.id).launched_at is None  # type: ignore[union-attr]
        new = the_list(s)  # the newcomers wait on a new list
        assert new.id != lst.id
    first_three = members(engine)[:3]
    assert {(m.status, m.status_reason) for m in first_three} == {(EXITED, "list_expired")}


def test_a_rejected_list_contacts_nobody(engine: Engine) -> None:
    admit(engine, 2)
    with session_scope(engine) as s:
        reject(
            session=s, target_list=the_list(s), by="manager", reason="wrong extract", today=TODAY
        )
    assert {(m.status, m.status_reason) for m in members(engine)} == {(EXITED, "list_rejected")}


def test_one_run_waits_per_list_and_a_stale_view_takes_nothing(engine: Engine) -> None:
    from flows.validation import claim

    admit(engine, 2)
    alive = {"a"}
    with session_scope(engine) as s:
        lst = the_list(s)
        assert claim(session=s, target_list=lst, run_id="a", still_waits=alive.__contains__) == "a"
        assert claim(session=s, target_list=lst, run_id="b", still_waits=alive.__contains__) == "a"
        alive.clear()  # run a failed, was cancelled or timed out
        assert claim(session=s, target_list=lst, run_id="b", still_waits=alive.__contains__) == "b"
    with session_scope(engine) as s1:
        stale = the_list(s1)
        with session_scope(engine) as s2:
            the_list(s2).flow_run_id = "c"  # another run took it since s1 read it
        assert (
            claim(session=s1, target_list=stale, run_id="d", still_waits=alive.__contains__) == "c"
        )
    with session_scope(engine) as s:
        assert the_list(s).flow_run_id == "c"


def test_the_pause_form_describes_the_list(engine: Engine) -> None:
    from flows.validation import describe

    admit(engine, 3, echelon="93")
    admit(engine, 2, start=10, echelon="75")
    own = members(engine)[0]
    with session_scope(engine) as s:
        lst = the_list(s)
        exclude(session=s, target_list=lst, member_id=own.id or 0, reason="hospitalised", by="x")
        sign_off(
            session=s,
            target_list=lst,
            echelon="93",
            by="lead-93",
            now=datetime(2026, 3, 3, 23, 30, tzinfo=UTC),  # 4 March in Paris
        )
        text = describe(session=s, target_list=lst, base_url="https://relance.example/")
    assert f"## Liste n° {lst.id} de la campagne « {D.name} » (sophia-ald8)" in text
    assert "| 75 | 2 | 0 | **pas encore validée** |" in text
    assert "| 93 | 3 | 1 | validée par lead-93 le 4 mars 2026 |" in text
    assert "au plus tard le 7 mars 2026 à minuit (heure de Paris)" in text
    assert "https://relance.example/campaigns/sophia-ald8/validation" in text


ROOT = Path(__file__).resolve().parents[1]


def deploy_and_start() -> uuid.UUID:
    """A run of the list-validation deployment, scheduled, as the server's scheduler makes it."""
    from prefect.deployments import run_deployment

    from flows.validation import list_validation

    deployment: Any = list_validation.to_deployment(name="test")
    deployment.apply()
    run: Any = run_deployment("list-validation/test", parameters={"campaign_id": D.id}, timeout=0)
    return uuid.UUID(str(run.id))


def execute(run_id: uuid.UUID) -> Any:
    """Run the flow run in its own process, as a process worker does; its state once it exits."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT__FLOW_ENTRYPOINT": "flows/validation.py:list_validation",
    }
    done = subprocess.run(
        [sys.executable, "-m", "prefect.engine", str(run_id)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with get_client(sync_client=True) as c:
        return c.read_flow_run(run_id).state


def decisions(engine: Engine) -> list[tuple[str, str, str]]:
    with session_scope(engine) as s:
        rows = s.exec(select(AuditEvent).where(col(AuditEvent.action).startswith("list_")))
        return [(e.actor, e.action, e.detail["via"]) for e in rows]


def test_the_run_waits_suspended_and_the_decision_from_prefect_is_audited(
    prefect_harness: None, platform: Path
) -> None:
    from prefect.flow_runs import resume_flow_run
    from prefect.input.actions import read_flow_run_input

    engine = get_engine()
    admit(engine, 3, echelon="93", today=paris_today())
    admit(engine, 2, start=10, echelon="75", today=paris_today())
    run_id = deploy_and_start()
    state = execute(run_id)
    # The process has exited and the run waits: nothing is held while échelons review.
    assert (state.type, state.name) == (StateType.PAUSED, "Suspended")
    with session_scope(engine) as s:
        lst = the_list(s)
        assert lst.flow_run_id == str(run_id)
        sign_off(session=s, target_list=lst, echelon="93", by="lead-93")
    form = str(read_flow_run_input(f"suspended-list-{lst.id}-1-description", flow_run_id=run_id))
    assert (
        f"Liste n° {lst.id} de la campagne" in form
        and "| 75 | 2 | 0 | **pas encore validée** |" in form
    )
    # A later scheduled run finds the list held by a live run and ends without suspending.
    second = deploy_and_start()
    assert execute(second).type == StateType.COMPLETED
    # Approval before every échelon validated is refused; the run waits again.
    resume_flow_run(run_id, run_input={"approved": True, "approver": "mme-dupont"})
    assert execute(run_id).name == "Suspended"
    with session_scope(engine) as s:
        assert (the_list(s).state, the_list(s).flow_run_id) == ("pending", str(run_id))
    assert decisions(engine) == []
    with session_scope(engine) as s:
        sign_off(session=s, target_list=the_list(s), echelon="75", by="lead-75")
    # On restart the refused approval is not replayed: the rejection sent next is what applies.
    resume_flow_run(
        run_id, run_input={"approved": False, "approver": "m-martin", "reason": "mauvais mois"}
    )
    assert execute(run_id).type == StateType.COMPLETED
    with session_scope(engine) as s:
        done = s.get_one(TargetList, lst.id)
        assert (done.state, done.decided_by, done.reason) == (
            "rejected",
            "m-martin",
            "mauvais mois",
        )
    assert decisions(engine) == [("m-martin", "list_reject", f"prefect flow run {run_id}")]


def test_an_approval_sent_in_prefect_launches_the_list(
    prefect_harness: None, platform: Path
) -> None:
    from prefect.flow_runs import resume_flow_run

    engine = get_engine()
    admit(engine, 3, echelon="93", today=paris_today())
    run_id = deploy_and_start()
    assert execute(run_id).name == "Suspended"
    with session_scope(engine) as s:
        sign_off(session=s, target_list=the_list(s), echelon="93", by="lead-93")
    resume_flow_run(run_id, run_input={"approved": True, "approver": "mme-dupont"})
    assert execute(run_id).type == StateType.COMPLETED
    assert {m.status for m in members(engine)} == {ACTIVE}
    assert decisions(engine) == [("mme-dupont", "list_approve", f"prefect flow run {run_id}")]


def test_a_decision_in_the_cli_resumes_the_run_which_ends_without_deciding_again(
    prefect_harness: None, platform: Path
) -> None:
    from typer.testing import CliRunner

    from console.cli import app

    engine = get_engine()
    admit(engine, 3, echelon="93", today=paris_today())
    run_id = deploy_and_start()
    assert execute(run_id).name == "Suspended"
    with session_scope(engine) as s:
        create_user(
            session=s, username="lead-93", password="correct horse battery",
            role="echelon_lead", echelon="93",
        )  # fmt: skip
    cli = CliRunner()
    signed = cli.invoke(app, ["validation", "sign-off", D.id, "--echelon", "93", "--by", "lead-93"])
    assert signed.exit_code == 0, signed.output
    out = cli.invoke(app, ["validation", "approve", D.id, "--by", "mgr"])
    assert out.exit_code == 0 and f"run Prefect {run_id} relancé" in out.output, out.output
    assert execute(run_id).type == StateType.COMPLETED
    assert {m.status for m in members(engine)} == {ACTIVE}
    assert decisions(engine) == [("mgr", "list_approve", "cli")]


def test_the_flow_expires_the_list_when_nobody_decides(
    prefect_harness: None, platform: Path
) -> None:
    from flows.validation import list_validation

    engine = get_engine()
    admit(engine, 2, echelon="93", today=paris_today() - timedelta(days=6))
    out = list_validation(campaign_id=D.id)
    assert out["state"] == "expired" and "not approved by its deadline" in out["detail"]
    assert "93" in out["detail"]
    assert {m.status_reason for m in members(engine)} == {"list_expired"}
