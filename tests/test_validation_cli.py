"""`relance validation` on a real ledger (SQLite, PostgreSQL): each step changes it, audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from campaigns.cascade.membership import admit_targets
from campaigns.clock import paris_today
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.audit import verify
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import ACTIVE, EXITED, AuditEvent, Exclusion, Member, TargetList
from campaigns.ledger.registry import register_campaign
from console.cli import app
from tests.factories import population

D = load_campaign("sophia-ald8").definition
PW = "correct horse battery"
LEAD = {"role": "echelon_lead"}  # the role of the account that signed, in its audit event


@pytest.fixture
def ledger(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The CLI pointed at the test database, with 3 people of échelon 93 and 2 of 75 listed."""
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    today = paris_today()
    for n, start, echelon in [(3, 0, "93"), (2, 10, "75")]:
        targets, people = population(
            n, anchor=today + timedelta(days=70), start=start, echelon=echelon
        )
        people["echelon"] = echelon
        with session_scope(engine) as s:
            register_campaign(session=s, definition=D)
            admit_targets(session=s, definition=D, targets=targets, people=people, today=today)
    accounts(engine)
    yield engine
    get_settings.cache_clear()


def accounts(engine: Engine) -> None:
    """The console accounts the commands name: each échelon's lead, a manager, an admin."""
    with session_scope(engine) as s:
        for name, role, echelon in [
            ("lead-93", "echelon_lead", "93"),
            ("lead-75", "echelon_lead", "75"),
            ("mgr", "campaign_manager", None),
            ("root", "admin", None),
        ]:
            create_user(session=s, username=name, password=PW, role=role, echelon=echelon)


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["validation", *args])
    assert result.exit_code == code, result.output
    return result.output


def events(engine: Engine) -> list[tuple[str, str, str, dict[str, Any]]]:
    with session_scope(engine) as s:
        rows = s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        assert verify(session=s) == (len(rows), None)
    return [(e.actor, e.action, e.target, e.detail) for e in rows]


def ids(engine: Engine, echelon: str) -> list[int]:
    with session_scope(engine) as s:
        q = select(Member.id).where(Member.echelon == echelon).order_by(col(Member.id))
        return [i for i in s.exec(q) if i is not None]


def the_list(engine: Engine) -> TargetList:
    with session_scope(engine) as s:
        return s.exec(select(TargetList)).one()


def test_review_then_approval_through_the_cli_is_audited(ledger: Engine) -> None:
    lst = the_list(ledger)
    assert "en attente" in run("status", D.id)
    assert events(ledger) == []  # reading the counts shows no one
    shown = run("list", D.id, "--echelon", "93", "--by", "lead-93")
    assert "NOM0" in shown and "NOM10" not in shown
    assert events(ledger) == [
        ("lead-93", "view_list", f"{D.id}/list/{lst.id}/93", {"people": 3}),
    ]
    own, other = ids(ledger, "93")[0], ids(ledger, "75")[0]
    out = run(
        "exclude", D.id, "--member", str(other), "--reason", "hospitalised",
        "--by", "lead-93", "--echelon", "93", code=2,
    )  # fmt: skip
    assert "cannot act" in out
    args = ("--member", str(own), "--reason", "hospitalised", "--by", "lead-93")
    run("exclude", D.id, *args, "--echelon", "93")
    run("revoke", D.id, "--member", str(own), "--by", "lead-93")
    assert "rien à annuler" in run("revoke", D.id, "--member", str(own), "--by", "lead-93")
    run("exclude", D.id, *args)
    run("sign-off", D.id, "--echelon", "93", "--by", "lead-93")
    refused = run("approve", D.id, "--by", "mgr", code=2)
    assert "chaque échelon doit avoir validé sa liste ; manque : 75" in refused
    assert the_list(ledger).state == "pending"
    run("sign-off", D.id, "--echelon", "75", "--by", "lead-75")
    approved = run("approve", D.id, "--by", "mgr")
    assert "93 : 2 lancées, 1 retirées" in approved
    assert "aucun run Prefect" in approved
    with session_scope(ledger) as s:
        exclusions = s.exec(select(Exclusion).order_by(col(Exclusion.id))).all()
        statuses = {m.id: m.status for m in s.exec(select(Member))}
    assert [(x.member_id, x.revoked_by) for x in exclusions] == [(own, "lead-93"), (own, None)]
    assert statuses.pop(own) == EXITED and set(statuses.values()) == {ACTIVE}
    after = the_list(ledger)
    assert (after.state, after.decided_by) == ("approved", "mgr")
    counts = {"75": {"launched": 2, "excluded": 0}, "93": {"launched": 2, "excluded": 1}}
    member = f"{D.id}/member/{own}"
    assert events(ledger)[1:] == [
        ("lead-93", "exclude", member, {"reason": "hospitalised"}),
        ("lead-93", "revoke_exclusion", member, {}),
        ("lead-93", "exclude", member, {"reason": "hospitalised"}),
        ("lead-93", "sign_off", f"{D.id}/list/{lst.id}/93", LEAD | {"signed_by": "lead-93"}),
        ("lead-75", "sign_off", f"{D.id}/list/{lst.id}/75", LEAD | {"signed_by": "lead-75"}),
        (
            "mgr",
            "list_approve",
            f"{D.id}/list/{lst.id}",
            {"counts": counts, "reason": "", "via": "cli"},
        ),
    ]
    assert "aucune liste en attente" in run("approve", D.id, "--by", "mgr", code=2)


def test_rejection_through_the_cli_is_audited_and_contacts_nobody(ledger: Engine) -> None:
    lst = the_list(ledger)
    assert "nommer qui la prend" in run("reject", D.id, "--by", " ", "--reason", "x", code=2)
    assert "un refus doit être motivé" in run(
        "reject", D.id, "--by", "mgr", "--reason", " ", code=2
    )
    assert f"liste {lst.id} refusée par mgr" in run(
        "reject", D.id, "--by", "mgr", "--reason", "extrait erroné"
    )
    with session_scope(ledger) as s:
        assert {m.status_reason for m in s.exec(select(Member))} == {"list_rejected"}
    assert (the_list(ledger).state, the_list(ledger).reason) == ("rejected", "extrait erroné")
    assert events(ledger) == [
        (
            "mgr",
            "list_reject",
            f"{D.id}/list/{lst.id}",
            {"counts": {}, "reason": "extrait erroné", "via": "cli"},
        )
    ]
    assert "refusée" in run("status", D.id)


def test_a_manager_cannot_sign_off_the_echelons_and_approve_alone(ledger: Engine) -> None:
    """Only an échelon's own lead (or an admin, with a reason that is recorded) signs off, in
    the command line as in the console: `--by` must name that account."""
    for echelon in ("93", "75"):
        said = run("sign-off", D.id, "--echelon", echelon, "--by", "mgr", code=2)
        assert f"seul le responsable de l'échelon {echelon}" in " ".join(said.split())
    said = run("sign-off", D.id, "--echelon", "75", "--by", "quelquun", code=2)
    assert "n'est pas un compte actif" in " ".join(said.split())
    run("sign-off", D.id, "--echelon", "75", "--by", "lead-93", code=2)
    refused = run("approve", D.id, "--by", "mgr", code=2)
    assert "manque : 75, 93" in " ".join(refused.split()) or "manque : 93, 75" in refused
    assert the_list(ledger).state == "pending" and events(ledger) == []
    run("sign-off", D.id, "--echelon", "93", "--by", "lead-93")
    assert "motif" in run("sign-off", D.id, "--echelon", "75", "--by", "root", code=2)
    run("sign-off", D.id, "--echelon", "75", "--by", "root", "--reason", "responsable absent")
    run("approve", D.id, "--by", "mgr")
    assert [(a, e, d) for a, e, _, d in events(ledger)][:2] == [
        ("lead-93", "sign_off", LEAD | {"signed_by": "lead-93"}),
        (
            "root",
            "sign_off",
            {"signed_by": "root", "role": "admin", "reason": "responsable absent"},
        ),
    ]
    assert the_list(ledger).state == "approved"
