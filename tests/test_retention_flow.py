"""The retention flow and `relance retention`: dry run by default, batches, a report without
personal data, an audit record, and a second run that changes nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

import flows.retention as flow_module
from campaigns.clock import utcnow
from campaigns.db import session_scope
from campaigns.definition import DEFINITIONS_DIR, parse_definition
from campaigns.membership import admit_targets
from campaigns.models import SENT, Action, AuditEvent, Enrolment, Member, Person
from campaigns.registry import register_campaign
from campaigns.retention import ANONYMOUS
from tests.factories import population

D = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
ANCHOR = date(2023, 6, 15)
ENTRY = ANCHOR - timedelta(days=80)
AS_OF = date(2026, 6, 16)  # 3 years and a day after person 1's letter


def ledger(engine: Engine) -> list[int]:
    """Four people: 0 only entered (2023-03-27), 1 last offered 2023-06-15, 2 offered in 2024,
    3 enrolled. Returns the ids of 0 and 1, the two retention must anonymise."""
    targets, people = population(4, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
    with session_scope(engine) as s:
        members = list(s.exec(select(Member).order_by(col(Member.id))).all())
        now = utcnow()
        for m, on in ((members[1], ANCHOR), (members[2], date(2024, 1, 10))):
            s.add(
                Action(
                    key=f"k{m.id}",
                    campaign_id=D.id,
                    member_id=m.id or 0,
                    person_id=m.person_id,
                    step="letter",
                    channel="letter",
                    attempt=1,
                    due_on=on,
                    state=SENT,
                    done_on=on,
                    created_at=now,
                    updated_at=now,
                )
            )
        s.add(
            Enrolment(
                ben_nir_psa="PSA000003",
                ben_rng_gem=1,
                programme="sophia",
                enrolled_on=ANCHOR,
                channel="online",
                source="test",
            )
        )
        return [members[0].person_id, members[1].person_id]


def identities(engine: Engine) -> dict[int, tuple[Any, ...]]:
    with session_scope(engine) as s:
        return {
            p.id or 0: (p.ben_nir_psa, p.nir, p.nom, p.prenom, p.telephone, p.email)
            for p in s.exec(select(Person))
        }


@pytest.fixture
def artifacts(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The flow's body without a Prefect server: its task as a function, artifacts captured."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(flow_module, "get_engine", lambda: engine)
    monkeypatch.setattr(flow_module, "configure_database", lambda: str(engine.url))
    monkeypatch.setattr(flow_module, "retention_task", flow_module.retention_task.fn)
    monkeypatch.setattr(
        flow_module, "create_table_artifact", lambda **kw: seen.__setitem__("table", kw)
    )
    monkeypatch.setattr(
        flow_module, "create_markdown_artifact", lambda **kw: seen.__setitem__("markdown", kw)
    )
    return seen


def no_personal_data(engine: Engine, text: str) -> None:
    with session_scope(engine) as s:
        for p in s.exec(select(Person)):
            for value in (p.ben_nir_psa, p.nir, p.nom, p.prenom, p.telephone, p.email):
                if value and value != ANONYMOUS:
                    assert value not in text


def test_the_dry_run_changes_nothing_and_reports(engine: Engine, artifacts: dict[str, Any]) -> None:
    ledger(engine)
    before = identities(engine)
    out = flow_module.retention.fn(as_of=AS_OF, batch_size=1)  # dry run by default
    assert identities(engine) == before
    assert out["dry_run"] is True and out["batches"] == 4
    assert (out["anonymised"], out["kept_recent"], out["kept_enrolled"]) == (2, 1, 1)
    assert out["per_campaign"] == {D.id: 2}
    assert out["oldest_last_offer"] == ENTRY.isoformat()
    assert artifacts["table"]["table"] == [{"campaign": D.id, "people": 2}]
    md = artifacts["markdown"]["markdown"]
    assert "2 personnes seraient anonymisées (simulation" in md
    assert ENTRY.strftime("%d/%m/%Y") in md
    no_personal_data(engine, md + json.dumps(artifacts["table"]) + json.dumps(out))


def test_apply_anonymises_exactly_the_expected_people_once(
    engine: Engine, artifacts: dict[str, Any]
) -> None:
    expected = ledger(engine)
    before = identities(engine)
    out = flow_module.retention.fn(dry_run=False, as_of=AS_OF, batch_size=3)
    assert (out["anonymised"], out["batches"]) == (2, 2)
    after = identities(engine)
    changed = sorted(pid for pid in before if before[pid] != after[pid])
    assert changed == sorted(expected)
    for pid in expected:
        psa, nir, nom, prenom, tel, email = after[pid]
        assert psa.startswith("anon-") and nir == "" and nom == prenom == ANONYMOUS
        assert tel is None and email is None
    assert "2 personnes anonymisées" in artifacts["markdown"]["markdown"]
    again = flow_module.retention.fn(dry_run=False, as_of=AS_OF, batch_size=3)
    assert identities(engine) == after
    assert (again["anonymised"], again["already_anonymous"]) == (0, 2)
    assert again["per_campaign"] == {} and again["oldest_last_offer"] is None


def test_nobody_is_due_a_day_too_early(engine: Engine, artifacts: dict[str, Any]) -> None:
    ledger(engine)
    out = flow_module.retention.fn(dry_run=False, as_of=date(2026, 3, 26))
    # Person 0 entered 2023-03-27: three years later to the day is not yet past.
    assert out["anonymised"] == 0


def test_the_cli_is_a_dry_run_unless_apply_and_is_audited(platform: Path) -> None:
    from campaigns.db import get_engine
    from console.cli import app

    engine = get_engine()
    expected = ledger(engine)
    before = identities(engine)
    runner = CliRunner()
    dry = runner.invoke(app, ["retention", "--as-of", AS_OF.isoformat()])
    assert dry.exit_code == 0, dry.output
    assert "2 personnes seraient anonymisées" in dry.output
    assert identities(engine) == before
    no_personal_data(engine, dry.output)
    done = runner.invoke(app, ["retention", "--apply", "--as-of", AS_OF.isoformat()])
    assert done.exit_code == 0, done.output
    assert "2 personnes anonymisées" in done.output
    after = identities(engine)
    assert sorted(pid for pid in before if before[pid] != after[pid]) == sorted(expected)
    with session_scope(engine) as s:
        runs = list(
            s.exec(
                select(AuditEvent)
                .where(col(AuditEvent.target) == "retention")
                .order_by(col(AuditEvent.id))
            )
        )
    assert [e.action for e in runs] == ["retention_dry_run", "retention_apply"]
    assert all(e.actor for e in runs)
    assert [e.detail["anonymised"] for e in runs] == [2, 2]
    bad = runner.invoke(app, ["retention", "--as-of", "16/06/2026"])
    assert bad.exit_code == 2
