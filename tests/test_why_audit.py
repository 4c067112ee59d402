"""`relance why` tells a person's path from the ledger; the audit chain detects tampering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select
from typer.testing import CliRunner

from campaigns.ledger.audit import record, verify
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import AuditEvent, Person
from campaigns.measurement.why import why
from console.cli import app
from tests.test_services import CALL_DAY, D, setup


def test_a_persons_path_with_reasons(engine: Engine) -> None:
    from campaigns.cascade.tick import tick

    setup(engine, 3, telephone=None)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        p = s.exec(select(Person)).first()
        assert p is not None
        story = why(session=s, campaign_id=D.id, ben_nir_psa=p.ben_nir_psa, ben_rng_gem=1)
        assert not why(session=s, campaign_id=D.id, ben_nir_psa="nobody", ben_rng_gem=1).found
    text = "\n".join(line for _, line in story.lines)
    assert story.found and story.status == "en cours"
    assert "entrée dans la campagne" in text and "call n°1 (phone) non fait : no_phone" in text


def test_audit_chain_detects_an_edited_event(engine: Engine) -> None:
    with session_scope(engine) as s:
        for i in range(4):
            record(session=s, actor="a", action="view_person", target=f"m/{i}")
        assert verify(session=s) == (4, None)
        second = s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()[1]  # type: ignore[arg-type]
    # The application cannot rewrite the log: the database refuses it.
    for change in (
        update(AuditEvent).where(AuditEvent.id == second.id).values(target="m/99"),
        delete(AuditEvent).where(AuditEvent.id == second.id),
    ):
        with pytest.raises(DBAPIError, match="append-only"), session_scope(engine) as s:
            s.execute(change)
    # Someone who owns the database can drop the guard: the chain still tells.
    with session_scope(engine) as s:
        _guards(s, engine, drop=True)
        s.execute(update(AuditEvent).where(AuditEvent.id == second.id).values(target="m/99"))
        _guards(s, engine, drop=False)
    with session_scope(engine) as s:
        assert verify(session=s) == (2, second.id)


def _guards(s: Any, engine: Engine, *, drop: bool) -> None:
    """Drop or put back the append-only triggers, as a database owner could."""
    if engine.dialect.name == "postgresql":
        verb = "DISABLE" if drop else "ENABLE"
        s.execute(text(f"ALTER TABLE auditevent {verb} TRIGGER auditevent_append_only"))
    elif drop:
        s.execute(text("DROP TRIGGER auditevent_no_update"))
    else:
        s.execute(
            text(
                "CREATE TRIGGER auditevent_no_update BEFORE UPDATE ON auditevent "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
        )


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    get_settings.cache_clear()
    try:
        with session_scope(get_engine()) as s:
            record(session=s, actor="a", action="login", target="console")
        ok = CliRunner().invoke(app, ["audit", "verify"])
        assert ok.exit_code == 0 and "1 événements" in ok.output
        missing = CliRunner().invoke(app, ["why", "--person", "X:1", "--campaign", D.id])
        assert missing.exit_code == 1 and "jamais entré" in missing.output
        assert CliRunner().invoke(app, ["why", "--person", "X", "--campaign", D.id]).exit_code == 2
    finally:
        get_settings.cache_clear()
