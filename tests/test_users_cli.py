"""`relance users add|list|disable|reset-password|set-role` (issue 16): each step a use case of
campaigns.app.accounts, audited, in French, a bad input refused with exit 2 — on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from campaigns.app import accounts as uc
from campaigns.ledger import db
from campaigns.ledger.accounts import AccountError, authenticate
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import AuditEvent, User
from campaigns.settings import get_settings
from console.cli import app

PASSWORD = "a-long-enough-password-2026"
NEW_PASSWORD = "another-long-password-2026"


@pytest.fixture
def ledger(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The CLI's database is the test's (either backend); the audit key in a scratch folder."""
    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(db, "get_engine", lambda: engine)
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args), input=stdin)
    assert "Traceback" not in r.output
    return r.exit_code, " ".join(r.output.split())


def events(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as s:
        rows = s.exec(select(AuditEvent).order_by(col(AuditEvent.id)))
        return [(e.action, e.target) for e in rows]


def user(engine: Engine, username: str) -> User:
    with session_scope(engine) as s:
        u = s.exec(select(User).where(User.username == username)).one()
        s.expunge(u)
        return u


def test_the_life_of_an_account_from_the_command_line(ledger: Engine) -> None:
    code, text = run("users", "add", "alice", "--role", "adviser", "--password-stdin",
                     stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0 and "compte alice (adviser) créé" in text, text
    code, text = run("users", "add", "bob", "--role", "echelon_lead", "--echelon", "93",
                     "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert code == 0, text

    code, text = run("users", "list")
    assert code == 0, text
    assert "alice" in text and "bob" in text and "2 compte(s)" in text
    assert "ouvert" in text and PASSWORD not in text and "argon2" not in text

    code, text = run("users", "set-role", "alice", "--role", "supervisor")
    assert code == 0 and "compte alice : supervisor" in text, text
    assert user(ledger, "alice").role == "supervisor"
    code, text = run("users", "set-role", "bob", "--role", "campaign_manager")
    assert code == 0 and user(ledger, "bob").echelon is None, text

    code, text = run("users", "reset-password", "alice", "--password-stdin",
                     stdin=NEW_PASSWORD + "\n")  # fmt: skip
    assert code == 0 and "mot de passe du compte alice changé" in text, text
    with session_scope(ledger) as s:
        assert authenticate(session=s, username="alice", password=PASSWORD) is None
        assert authenticate(session=s, username="alice", password=NEW_PASSWORD) is not None

    code, text = run("users", "disable", "alice")
    assert code == 0 and "compte alice fermé" in text, text
    code, text = run("users", "disable", "alice")
    assert code == 0 and "déjà fermé" in text, text
    assert user(ledger, "alice").active is False
    with session_scope(ledger) as s:
        assert authenticate(session=s, username="alice", password=NEW_PASSWORD) is None
    code, text = run("users", "list")
    assert "fermé" in text

    assert events(ledger) == [
        ("create_user", "account/alice"),
        ("create_user", "account/bob"),
        ("list_users", "account"),
        ("set_role", "account/alice"),
        ("set_role", "account/bob"),
        ("reset_password", "account/alice"),
        ("disable_user", "account/alice"),
        ("list_users", "account"),
    ]


def test_a_reset_lifts_the_lock_out(ledger: Engine) -> None:
    with session_scope(ledger) as s:
        uc.add_user(session=s, actor="t", username="carol", password=PASSWORD, role="adviser")
    with session_scope(ledger) as s:
        for _ in range(5):
            assert authenticate(session=s, username="carol", password="wrong-password-x") is None
    assert user(ledger, "carol").locked_until is not None
    code, text = run("users", "list")
    assert "verrouillé" in text, text
    code, _ = run("users", "reset-password", "carol", "--password-stdin", stdin=NEW_PASSWORD)
    assert code == 0
    u = user(ledger, "carol")
    assert u.locked_until is None and u.failed_logins == 0


@pytest.mark.parametrize(
    ("args", "stdin", "named"),
    [
        (["users", "disable", "nobody"], None, "aucun compte 'nobody'"),
        (["users", "reset-password", "nobody", "--password-stdin"], PASSWORD, "aucun compte"),
        (["users", "reset-password", "dave", "--password-stdin"], "short", "12 caractères"),
        (["users", "set-role", "nobody", "--role", "adviser"], None, "aucun compte"),
        (["users", "set-role", "dave", "--role", "boss"], None, "rôle inconnu 'boss' (--role)"),
        (["users", "set-role", "dave", "--role", "echelon_lead"], None, "--echelon"),
        (["users", "add", "dave", "--role", "adviser", "--password-stdin"], PASSWORD, "existe"),
        (["users", "add", "eve", "--role", "adviser", "--password-stdin"], "short", "12"),
        (["users", "list", "extra"], None, ""),
    ],
)
def test_a_bad_account_step_is_refused_and_changes_nothing(
    ledger: Engine, args: list[str], stdin: str | None, named: str
) -> None:
    with session_scope(ledger) as s:
        uc.add_user(session=s, actor="t", username="dave", password=PASSWORD, role="adviser")
    before = user(ledger, "dave").model_dump()
    code, text = run(*args, stdin=None if stdin is None else stdin + "\n")
    assert code == 2, text
    assert named in text, text
    assert user(ledger, "dave").model_dump() == before
    assert events(ledger) == [("create_user", "account/dave")]


def test_the_use_cases_refuse_what_the_cli_refuses(ledger: Engine) -> None:
    with session_scope(ledger) as s, pytest.raises(AccountError, match="aucun compte"):
        uc.disable_user(session=s, actor="t", username="ghost")
    with session_scope(ledger) as s, pytest.raises(AccountError, match="rôle inconnu"):
        uc.set_role(session=s, actor="t", username="ghost", role="root")
