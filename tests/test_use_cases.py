"""Use cases (campaigns.app): each changes the ledger and writes exactly one audit event with
its actor, on SQLite and PostgreSQL; and the CLI, the web and the flows go through them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

import campaigns.app.calls as calls_uc
import campaigns.app.objectives as objectives_uc
import campaigns.app.oppositions as oppositions_uc
import campaigns.app.retention as retention_uc
import campaigns.app.stages as stages
import campaigns.ledger.db as ledger_db
import console.web.routes_calls as routes_calls
import console.web.routes_campaigns as routes_campaigns
import console.web.routes_results as routes_results
import flows.retention as flow_retention
from campaigns.app.retention import run_retention
from campaigns.calls.queue import CallError, claim_next
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.audit import record
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import (
    DONE,
    Action,
    AuditEvent,
    Member,
    MemberEvent,
    Objective,
    Opposition,
    Person,
)
from campaigns.ledger.registry import register_campaign
from campaigns.ledger.retention import ANONYMOUS
from campaigns.settings import Settings, get_settings
from console.cli import app as cli_app
from console.demo.simulator import at
from tests import test_console as web
from tests import test_retention_flow as ret
from tests.factories import population

C = load_campaign("sophia-ald8")
D = C.definition
ANCHOR = date(2026, 6, 15)
CALL_DAY = date(2026, 4, 20)  # a Monday, 56 days before the renewal
NOW = at(CALL_DAY, 10)


def launched(engine: Engine, n: int = 2) -> None:
    targets, people = population(n, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=CALL_DAY - timedelta(1)
        )
    tick(engine=engine, definition=D, today=CALL_DAY)


def claimed(engine: Engine, adviser: str = "adv") -> int:
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser=adviser, now=NOW, definitions={D.id: D})
        assert c is not None
        return c.action_id


def audit(engine: Engine) -> list[AuditEvent]:
    with session_scope(engine) as s:
        return list(s.exec(select(AuditEvent).order_by(col(AuditEvent.id))))


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[dict[str, Any]]:
    """Replace module.name by a wrapper that records its keyword arguments, then calls it."""
    seen: list[dict[str, Any]] = []
    real: Callable[..., Any] = getattr(module, name)

    def wrapper(**kw: Any) -> Any:
        seen.append(kw)
        return real(**kw)

    monkeypatch.setattr(module, name, wrapper)
    return seen


# --- outcomes ---------------------------------------------------------------------------


def test_record_call_outcome_records_the_outcome_offers_and_one_audit_event(
    engine: Engine,
) -> None:
    launched(engine)
    aid = claimed(engine)
    before = len(audit(engine))
    with session_scope(engine) as s:
        made = calls_uc.record_call_outcome(
            session=s,
            actor="adv",
            action_id=aid,
            outcome="refused",
            now=NOW,
            offers=["medecin-traitant", "no-such-offer"],
        )
    assert made == ["medecin-traitant"]
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None and (a.state, a.outcome) == (DONE, "refused")
        offered = s.exec(select(MemberEvent).where(MemberEvent.kind == "offer_made")).one()
        assert offered.detail["offer"] == "medecin-traitant"
    (ev,) = audit(engine)[before:]
    assert (ev.action, ev.actor, ev.target) == ("outcome", "adv", f"action/{aid}")


@pytest.mark.parametrize(("days", "kept"), [(30, False), (-30, True)])
def test_an_opposing_outcome_follows_the_policys_rule_on_earlier_dates(
    engine: Engine, days: int, kept: bool
) -> None:
    """An opposition on record from a later day is moved to the call's day (it was left at its
    later date before); one from an earlier day is kept, and never duplicated."""
    launched(engine)
    aid = claimed(engine)
    on_record = CALL_DAY + timedelta(days=days)
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None
        p = s.get(Person, a.person_id)
        assert p is not None
        s.add(
            Opposition(
                ben_nir_psa=p.ben_nir_psa,
                ben_rng_gem=p.ben_rng_gem,
                canal="all",
                opposed_on=on_record,
                source="file",
            )
        )
    with session_scope(engine) as s:
        calls_uc.record_call_outcome(
            session=s, actor="adv", action_id=aid, outcome="objects", now=NOW
        )
    with session_scope(engine) as s:
        (o,) = s.exec(select(Opposition)).all()
    assert o.opposed_on == (on_record if kept else NOW.date())


def test_reveal_contact_is_audited_once_and_only_for_the_caller(engine: Engine) -> None:
    launched(engine)
    aid = claimed(engine)
    before = len(audit(engine))
    with session_scope(engine) as s:
        person = calls_uc.reveal_contact(session=s, actor="adv", action_id=aid, now=NOW)
        a = s.get(Action, aid)
        assert a is not None and person.id == a.person_id and person.telephone
    (ev,) = audit(engine)[before:]
    assert (ev.action, ev.actor, ev.target) == ("reveal_contact", "adv", f"person/{person.id}")
    assert ev.detail == {"action": aid}
    with session_scope(engine) as s, pytest.raises(CallError):
        calls_uc.reveal_contact(session=s, actor="intruder", action_id=aid)
    assert len(audit(engine)) == before + 1


# --- oppositions ------------------------------------------------------------------------


def test_record_member_opposition_records_it_and_one_audit_event(engine: Engine) -> None:
    launched(engine)
    with session_scope(engine) as s:
        m = s.exec(select(Member).order_by(col(Member.id))).first()
        assert m is not None
        mid = m.id or 0
        assert oppositions_uc.record_member_opposition(
            session=s, actor="sup", campaign_id=D.id, member_id=mid, canal="phone", today=CALL_DAY
        )
    with session_scope(engine) as s:
        (o,) = s.exec(select(Opposition)).all()
    assert (o.canal, o.opposed_on, o.source) == ("phone", CALL_DAY, "console by sup")
    (ev,) = audit(engine)
    assert (ev.action, ev.actor, ev.target) == ("record_opposition", "sup", f"{D.id}/member/{mid}")


def test_import_oppositions_records_the_file_and_one_audit_event(
    engine: Engine, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("ben_nir_psa,ben_rng_gem,canal\nPSA000001,1,phone\nPSA000002,1,all\n")
    with session_scope(engine) as s:
        done = oppositions_uc.import_oppositions(session=s, actor="ops", path=good, today=CALL_DAY)
    assert (done.rows, done.added, done.errors) == (2, 2, [])
    (ev,) = audit(engine)
    assert (ev.action, ev.actor, ev.target) == ("import_oppositions", "ops", "oppositions")
    assert ev.detail == {"file": "good.csv", "rows": 2, "added": 2}  # counts, no identifier
    bad = tmp_path / "bad.csv"
    bad.write_text("ben_nir_psa,ben_rng_gem,canal\nPSA000003,1,phone\nPSA000004,x,fax\n")
    with session_scope(engine) as s:
        refused = oppositions_uc.import_oppositions(
            session=s, actor="ops", path=bad, today=CALL_DAY
        )
    assert refused.added == 0 and len(refused.errors) == 2
    with session_scope(engine) as s:
        assert len(s.exec(select(Opposition)).all()) == 2
    assert len(audit(engine)) == 1  # nothing imported, nothing audited


# --- objectives -------------------------------------------------------------------------


def test_set_and_import_objectives_each_write_one_audit_event(engine: Engine) -> None:
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
    with session_scope(engine) as s:
        objectives_uc.set_objective(
            session=s, actor="mgr", campaign_id=D.id, echelon="91", objective=12, note="revu"
        )
    (ev,) = audit(engine)
    assert (ev.action, ev.actor, ev.target) == ("set_objective", "mgr", f"{D.id}/91")
    with session_scope(engine) as s:
        n = objectives_uc.import_objectives(
            session=s,
            actor="mgr",
            campaign_id=D.id,
            text="echelon,objective\n91,10\n75,3\n",
            filename="obj.csv",
        )
    assert n == 2
    (_, ev) = audit(engine)
    assert (ev.action, ev.actor, ev.target) == ("import_objectives", "mgr", D.id)
    with session_scope(engine) as s:
        got = sorted(
            (o.echelon, o.target, o.set_by)
            for o in s.exec(select(Objective).where(col(Objective.set_by) == "mgr"))
        )
    assert got == [("75", 3, "mgr"), ("91", 10, "mgr"), ("91", 12, "mgr")]


# --- retention --------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False])
def test_run_retention_anonymises_in_batches_and_writes_one_audit_event(
    engine: Engine, dry_run: bool
) -> None:
    expected = ret.ledger(engine)
    with session_scope(engine) as s:
        summary = run_retention(
            session=s, actor="ops", as_of=ret.AS_OF, dry_run=dry_run, batch_size=3
        )
    assert (summary.anonymised, summary.batches) == (2, 2)
    with session_scope(engine) as s:
        anonymous = sorted(p.id or 0 for p in s.exec(select(Person)) if p.nom == ANONYMOUS)
    assert anonymous == ([] if dry_run else sorted(expected))
    (ev,) = audit(engine)
    assert (ev.action, ev.actor, ev.target) == (
        "retention_dry_run" if dry_run else "retention_apply",
        "ops",
        "retention",
    )
    assert ev.detail["anonymised"] == 2


# --- the doors go through the use cases --------------------------------------------------


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Callable[[str], TestClient]:
    """A logged-in console client for a user, at 10:00 on the call day."""
    web.users(engine)

    def make(who: str) -> TestClient:
        app = web.create_app(
            Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none"),
            engine=engine,
        )
        app.state.clock = lambda: NOW
        c = TestClient(app)
        web.login(c, who)
        return c

    return make


def test_the_call_card_reveals_and_records_outcomes_through_the_use_cases(
    engine: Engine, client: Callable[[str], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    launched(engine)
    reveals = spy(monkeypatch, routes_calls, "reveal_contact")
    outcomes = spy(monkeypatch, routes_calls, "record_call_outcome")
    adv = client("adv")
    card = web.post(adv, "/calls/next", {}, "/calls").headers["location"]
    web.post(adv, f"{card}/reveal", {}, card)
    r = web.post(adv, f"{card}/outcome", {"outcome": "refused"}, card)
    assert r.headers["location"] == "/calls"
    aid = int(card.rsplit("/", 1)[1])
    assert [(k["actor"], k["action_id"]) for k in reveals] == [("adv", aid)]
    assert [(k["actor"], k["action_id"], k["outcome"]) for k in outcomes] == [
        ("adv", aid, "refused")
    ]


def test_the_use_case_alone_refuses_another_advisers_call_with_403(
    engine: Engine, client: Callable[[str], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reveal and outcome on a call another adviser holds: 403 with the use case's French words,
    nothing written; the routes read the call only through the use case."""
    launched(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="adv2", password=web.PW, role="adviser")
    card = web.post(client("adv"), "/calls/next", {}, "/calls").headers["location"]
    aid = int(card.rsplit("/", 1)[1])
    other = client("adv2")

    def no_second_check(*args: Any) -> None:
        raise AssertionError("the route checked the call itself")

    monkeypatch.setattr(routes_calls, "own_call", no_second_check)
    before = len(audit(engine))
    for path, data in ((f"{card}/reveal", {}), (f"{card}/outcome", {"outcome": "refused"})):
        r = web.post(other, path, data, "/calls")
        assert r.status_code == 403, path
        assert "cet appel ne vous est pas attribué" in r.text
    # Nothing written but the two refusals themselves, audited (issue 17: every denial).
    after = audit(engine)[before:]
    assert [(e.action, e.actor, e.detail["status"]) for e in after] == [
        ("access_denied", "adv2", 403)
    ] * 2
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None and (a.claimed_by, a.state, a.outcome) == ("adv", "queued", None)


def test_the_person_page_records_oppositions_through_the_use_case(
    engine: Engine, client: Callable[[str], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    launched(engine)
    with session_scope(engine) as s:
        m = s.exec(select(Member).order_by(col(Member.id))).first()
        assert m is not None
        page = f"/campaigns/{D.id}/members/{m.id}"
    seen = spy(monkeypatch, routes_campaigns, "record_member_opposition")
    sup = client("sup")
    r = web.post(sup, f"{page}/opposition", {"canal": "phone"}, page)
    assert r.status_code == 303
    assert [(k["actor"], k["member_id"], k["canal"]) for k in seen] == [("sup", m.id, "phone")]


def test_the_results_page_sets_and_imports_objectives_through_the_use_cases(
    engine: Engine, client: Callable[[str], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
    set_one = spy(monkeypatch, routes_results, "set_objective")
    imported = spy(monkeypatch, routes_results, "import_objectives")
    mgr = client("mgr")
    page = f"/campaigns/{D.id}/results"
    r = web.post(mgr, f"/campaigns/{D.id}/objectives", {"echelon": "91", "objective": 7}, page)
    assert r.status_code == 303
    r = mgr.post(
        f"/campaigns/{D.id}/objectives/import",
        data={"csrf": web.csrf(mgr, page)},
        files={"file": ("obj.csv", b"echelon,objective\n91,10\n", "text/csv")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert [(k["actor"], k["echelon"], k["objective"]) for k in set_one] == [("mgr", "91", 7)]
    assert [(k["actor"], k["filename"]) for k in imported] == [("mgr", "obj.csv")]


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    get_settings.cache_clear()
    yield tmp_path  # type: ignore[misc]
    get_settings.cache_clear()


def test_relance_oppositions_import_goes_through_the_use_case(
    cli_database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.cli import app

    seen = spy(monkeypatch, oppositions_uc, "import_oppositions")
    good = cli_database / "good.csv"
    good.write_text("ben_nir_psa,ben_rng_gem,canal\nPSA000001,1,phone\n")
    r = CliRunner().invoke(app, ["oppositions", "import", str(good)])
    assert r.exit_code == 0 and "1 opposition(s) enregistrée(s)" in r.output, r.output
    assert [k["path"] for k in seen] == [good] and seen[0]["actor"]


def test_relance_retention_goes_through_the_use_case(
    cli_database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.cli import app

    seen = spy(monkeypatch, retention_uc, "run_retention")
    r = CliRunner().invoke(app, ["retention", "--apply", "--as-of", "2026-06-16"])
    assert r.exit_code == 0, r.output
    assert [(k["as_of"], k["dry_run"]) for k in seen] == [(date(2026, 6, 16), False)]


def test_the_retention_flow_goes_through_the_use_case(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flow_retention, "get_engine", lambda: engine)
    monkeypatch.setattr(flow_retention, "configure_database", lambda: str(engine.url))
    monkeypatch.setattr(flow_retention, "retention_task", flow_retention.retention_task.fn)
    monkeypatch.setattr(flow_retention, "create_table_artifact", lambda **kw: None)
    monkeypatch.setattr(flow_retention, "create_markdown_artifact", lambda **kw: None)
    seen = spy(monkeypatch, flow_retention, "run_retention")
    out = flow_retention.retention.fn(as_of=ret.AS_OF)
    assert out["dry_run"] is True and [k["dry_run"] for k in seen] == [True]
    (ev,) = audit(engine)
    assert (ev.action, ev.actor) == ("retention_dry_run", "flow:retention")


def test_the_tick_stage_runs_the_one_batch_loop(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets, people = population(5, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=CALL_DAY - timedelta(1)
        )
    seen = spy(monkeypatch, stages, "tick")
    counts = stages.tick_stage(engine=engine, campaign=C, day=CALL_DAY, batch_size=2)
    assert [(k["today"], k["batch_size"]) for k in seen] == [(CALL_DAY, 2)]
    # Four members are due (two batches of two); the fifth, held out, is quiet: counted only.
    assert counts["batches"] == 2 and counts["members"] == 5


def test_the_audit_checkpoint_stage_attests_the_last_event_for_the_flow_and_the_cli(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One use case writes the checkpoint: the day's last task and `relance audit checkpoint`."""
    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert stages.audit_checkpoint_stage(engine=engine) == []  # an empty log
        for i in range(3):
            with session_scope(engine) as s:
                record(session=s, actor="adv", action="view_person", target=f"member/{i}")
        (line,) = stages.audit_checkpoint_stage(engine=engine)
        assert (line["lane"], line["seq"]) == (1, 3)
        (last,) = [json.loads(x) for x in (tmp_path / "audit_checkpoints.jsonl").open()]
        assert last == line
        seen = spy(monkeypatch, stages, "audit_checkpoint_stage")
        monkeypatch.setattr(ledger_db, "get_engine", lambda: engine)
        out = CliRunner().invoke(cli_app, ["audit", "checkpoint"])
        assert out.exit_code == 0 and "n°3" in out.output
        assert seen == [{"engine": engine}]
    finally:
        get_settings.cache_clear()


# --- launches ---------------------------------------------------------------------------


def test_approving_the_list_launches_it_with_one_audit_event(engine: Engine) -> None:
    from campaigns.app import validation as uc
    from campaigns.ledger.models import ACTIVE, PENDING

    web.listed(engine)
    with session_scope(engine) as s:
        for echelon in ("93", "75"):
            uc.sign_off_echelon(
                session=s,
                actor=f"lead{echelon}",
                campaign_id=D.id,
                echelon=echelon,
                role="echelon_lead",
                own_echelon=echelon,
            )
    before = len(audit(engine))
    with session_scope(engine) as s:
        done = uc.decide_list(
            session=s, actor="mgr", campaign_id=D.id, decision="approve", today=date(2026, 3, 3)
        )
    assert sum(c["launched"] for c in done.counts.values()) == 6
    with session_scope(engine) as s:
        statuses = {m.status for m in s.exec(select(Member))}
    assert statuses == {ACTIVE} and PENDING not in statuses
    (ev,) = audit(engine)[before:]
    assert (ev.action, ev.actor) == ("list_approve", "mgr")
    assert ev.target == f"{D.id}/list/{done.list_id}"
