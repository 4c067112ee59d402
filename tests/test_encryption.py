"""NIR, phone and e-mail are encrypted at rest, keys rotate, and no clear value is logged."""

from __future__ import annotations

import base64
import logging
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from campaigns.cascade.membership import admit_targets
from campaigns.ledger import crypto
from campaigns.ledger.db import alembic_config, get_engine, make_engine, session_scope, upgrade
from campaigns.ledger.models import Person
from campaigns.ledger.registry import register_campaign
from campaigns.settings import get_settings
from console.cli import app
from tests.conftest import PG_ADMIN_URL, _pg_available
from tests.factories import population
from tests.test_services import ANCHOR, ENTRY, D

OLD = "dGVzdC1vbmx5LWtleS1yZWxhbmNlLWNvbnRhY3QtZGE="  # the key tests/conftest.py sets
NEW = crypto.new_key()
OTHER = crypto.new_key()
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CLEAR = ("2600591123456", "+33698765432", "jeanne.martin@example.org")


@pytest.fixture(autouse=True)
def _fresh_keys() -> Iterator[None]:
    crypto.reset()
    yield
    crypto.reset()


def _person(nir: str, telephone: str | None, email: str | None) -> Person:
    return Person(
        ben_nir_psa="PSAORM",
        ben_rng_gem=1,
        nir=nir,
        civilite="Mme",
        nom="MARTIN",
        prenom="Jeanne",
        address_lines=["Mme Jeanne MARTIN", "1 RUE DE LA PAIX", "75002 PARIS"],
        telephone=telephone,
        email=email,
        echelon="75",
        departement="75",
        updated_at=NOW,
    )


def _admit(engine: Engine, n: int) -> list[tuple[str, str, str]]:
    """Admit n people through the bulk (Core insert) path; their clear contact values."""
    targets, people = population(n, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(session=s, definition=D, targets=targets, people=people, today=ENTRY)
    return list(zip(people["nir"], people["telephone"], people["email"], strict=True))


def _raw(engine: Engine) -> dict[str, tuple[str, str | None, str | None]]:
    with engine.connect() as c:
        return {
            r.ben_nir_psa: (r.nir, r.telephone, r.email)
            for r in c.execute(
                text("SELECT ben_nir_psa, nir, telephone, email FROM person ORDER BY id")
            )
        }


def _clear(engine: Engine) -> dict[str, tuple[str, str | None, str | None]]:
    with session_scope(engine) as s:
        return {
            p.ben_nir_psa: (p.nir, p.telephone, p.email)
            for p in s.exec(select(Person).order_by(col(Person.id)))
        }


def test_orm_and_bulk_writes_store_only_tokens(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(_person(*CLEAR))
    admitted = _admit(engine, 5)
    clear = _clear(engine)
    assert clear["PSAORM"] == CLEAR
    assert sorted(v for k, v in clear.items() if k != "PSAORM") == sorted(admitted)
    raw = _raw(engine)
    assert len(raw) == 6
    for key, stored in raw.items():
        for token, value in zip(stored, clear[key], strict=True):
            assert value and token and token != value and value not in token
            assert token.startswith(crypto.GCM_PREFIX)  # new writes are g1 tokens
            assert crypto.decrypt(token) == value


def test_null_stays_null_and_updates_are_encrypted(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(_person(CLEAR[0], None, None))
    assert _raw(engine)["PSAORM"][1:] == (None, None)
    with session_scope(engine) as s:
        p = s.exec(select(Person)).one()
        p.telephone = "+33611223344"
        s.add(p)
    token = _raw(engine)["PSAORM"][1]
    assert token and "611223344" not in token
    assert _clear(engine)["PSAORM"][1] == "+33611223344"


def test_rotation_re_encrypts_with_the_newest_key(engine: Engine) -> None:
    crypto.set_keys([OLD])
    with session_scope(engine) as s:
        s.add(_person(*CLEAR))
    admitted = _admit(engine, 3)
    before = _raw(engine)
    expected = _clear(engine)

    crypto.set_keys([NEW])  # the new key alone cannot read what the old one wrote
    with pytest.raises(crypto.DecryptionError):
        _clear(engine)

    crypto.set_keys([NEW, OLD])
    assert _clear(engine) == expected  # both keys: old tokens still read
    counts = crypto.rotate_all(engine, batch=2)  # several batches
    assert counts == {"values": 12, "person.rows": 4}
    after = _raw(engine)
    assert all(a != b for k in before for a, b in zip(after[k], before[k], strict=True))

    crypto.set_keys([NEW])  # old key dropped: everything reads with the new one
    assert _clear(engine) == expected
    assert sorted(v for k, v in expected.items() if k != "PSAORM") == sorted(admitted)
    crypto.set_keys([OLD])  # and the old key no longer opens anything
    with pytest.raises(crypto.DecryptionError):
        _clear(engine)


def test_a_wrong_key_gives_a_clear_error_without_the_value(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(_person(*CLEAR))
    token = _raw(engine)["PSAORM"][0]
    crypto.set_keys([OTHER])
    with pytest.raises(crypto.DecryptionError) as e:
        _clear(engine)
    message = str(e.value)
    assert "person.nir" in message and "RELANCE_DATA_KEYS" in message
    assert CLEAR[0] not in message and token not in message
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_a_malformed_key_is_reported_without_echoing_it() -> None:
    with pytest.raises(crypto.KeyConfigError) as e:
        crypto.set_keys([NEW, "not-a-key-secret"])
    assert "n° 2" in str(e.value) and "not-a-key-secret" not in str(e.value)


def test_without_configured_keys_one_is_generated_and_kept_0600(
    platform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELANCE_DATA_KEYS", raising=False)
    get_settings.cache_clear()
    token = crypto.encrypt(CLEAR[2])
    path = platform / "data_keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = path.read_text().strip()
    crypto.Fernet(kept)  # a valid key
    crypto.reset()
    get_settings.cache_clear()
    assert crypto.decrypt(token) == CLEAR[2]  # the same key, read back from the file
    assert path.read_text().strip() == kept
    path.write_text(crypto.new_key())
    crypto.reset()
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_relance_keys_rotate_and_new(platform: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELANCE_DATA_KEYS", OLD)
    get_settings.cache_clear()
    engine = get_engine()
    _admit(engine, 3)
    expected = _clear(engine)

    runner = CliRunner()
    fresh = runner.invoke(app, ["keys", "new"])
    assert fresh.exit_code == 0, fresh.output
    new = fresh.output.strip()
    crypto.Fernet(new)

    monkeypatch.setenv("RELANCE_DATA_KEYS", f"{new},{OLD}")
    get_settings.cache_clear()
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "9 valeurs de 3 personnes rechiffrées" in result.output

    monkeypatch.setenv("RELANCE_DATA_KEYS", new)
    get_settings.cache_clear()
    assert _clear(engine) == expected

    # Rotating without the key that wrote the data fails, naming the setting.
    monkeypatch.setenv("RELANCE_DATA_KEYS", f"{crypto.new_key()},{OLD}")
    get_settings.cache_clear()
    failed = runner.invoke(app, ["keys", "rotate"])
    assert failed.exit_code == 1 and "RELANCE_DATA_KEYS" in failed.output


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migration test cannot share the session's)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"relance_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_migration_0006_encrypts_existing_rows_and_downgrade_decrypts(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        _migrate(engine, "0005")
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO campaign (id, name, definition_sha256, registered_at) "
                    "VALUES ('c1', 'c1', :sha, :now)"
                ),
                {"sha": "0" * 64, "now": NOW},
            )
            for i, (tel, mail) in enumerate([(CLEAR[1], CLEAR[2]), (None, None)], 1):
                c.execute(
                    text(
                        "INSERT INTO person (id, ben_nir_psa, ben_rng_gem, nir, civilite, nom, "
                        "prenom, address_lines, telephone, email, compte_ameli, echelon, "
                        "departement, sex, phone_invalid, email_invalid, address_invalid, "
                        "updated_at) VALUES (:id, :psa, 1, :nir, 'Mme', 'MARTIN', 'Jeanne', "
                        "'[\"1 RUE DE LA PAIX\"]', :tel, :mail, true, '75', '75', 2, false, "
                        "false, false, :now)"
                    ),
                    {
                        "id": i,
                        "psa": f"PSA{i}",
                        "nir": CLEAR[0],
                        "tel": tel,
                        "mail": mail,
                        "now": NOW,
                    },
                )
            # A member points at the person: SQLite's table rebuild must keep the link.
            c.execute(
                text(
                    "INSERT INTO member (campaign_id, person_id, echelon, entered_on, "
                    "anchor_date, priority, gaps, holdout, status, last_seen_on) VALUES "
                    "('c1', 1, '75', :d, :d, false, '[]', false, 'active', :d)"
                ),
                {"d": date(2026, 3, 1)},
            )

        upgrade(engine)  # to head, as the platform does when it connects
        raw = _raw(engine)
        assert raw["PSA2"][1:] == (None, None)
        for token, value in zip(raw["PSA1"], CLEAR, strict=True):
            assert token and token != value and value not in token
        assert raw["PSA2"][0] != CLEAR[0]
        assert _clear(engine) == {"PSA1": CLEAR, "PSA2": (CLEAR[0], None, None)}
        with engine.connect() as c:
            assert c.execute(text("SELECT person_id FROM member")).scalar_one() == 1
        # A token is longer than the former VARCHAR(15): the column type changed too.
        with session_scope(engine) as s:
            p = s.exec(select(Person).where(Person.ben_nir_psa == "PSA2")).one()
            p.email = "x" * 200 + "@example.org"
            s.add(p)

        _migrate(engine, "0005", down=True)
        raw = _raw(engine)
        assert raw["PSA1"] == CLEAR
        assert raw["PSA2"] == (CLEAR[0], None, "x" * 200 + "@example.org")
    finally:
        engine.dispose()


def test_sql_logging_shows_tokens_never_clear_values(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO is SQLAlchemy's echo: statements and their parameters, as sent to the database.
    # (DEBUG also logs result rows after decryption: never enable it in production, see
    # docs/security.md.)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with session_scope(engine) as s:
        s.add(_person(*CLEAR))
    admitted = _admit(engine, 4)
    _clear(engine)
    crypto.set_keys([OTHER])
    with pytest.raises(crypto.DecryptionError):
        _clear(engine)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "INSERT INTO person" in logged and "SELECT" in logged  # statements were logged
    secrets = [*CLEAR, *(v for row in admitted for v in row)]
    assert [s for s in secrets if s in logged] == []


def test_fernet_tokens_written_before_still_read_and_rotate_to_g1() -> None:
    crypto.set_keys([NEW, OLD])
    old_token = crypto.Fernet(OLD).encrypt(b"+33612345678").decode()
    assert crypto.decrypt(old_token) == "+33612345678"
    rotated = crypto.rotate(old_token)
    assert rotated.startswith(crypto.GCM_PREFIX) and "612345678" not in rotated
    crypto.set_keys([NEW])
    assert crypto.decrypt(rotated) == "+33612345678"


def test_g1_tokens_of_an_older_key_rotate_to_the_newest() -> None:
    crypto.set_keys([OLD])
    token = crypto.encrypt("1850775123456")
    crypto.set_keys([NEW, OLD])
    assert crypto.decrypt(token) == "1850775123456"
    rotated = crypto.rotate(token)
    assert rotated != token
    crypto.set_keys([NEW])
    assert crypto.decrypt(rotated) == "1850775123456"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)  # the old key is gone: its tokens no longer open


def test_two_encryptions_differ_and_a_tampered_token_is_refused_in_french() -> None:
    crypto.set_keys([NEW])
    a, b = crypto.encrypt("1850775123456"), crypto.encrypt("1850775123456")
    assert a != b  # a random nonce each time: equal values are not seen as equal
    blob = bytearray(base64.urlsafe_b64decode(a[len(crypto.GCM_PREFIX) :]))
    blob[-1] ^= 1
    tampered = crypto.GCM_PREFIX + base64.urlsafe_b64encode(bytes(blob)).decode()
    for bad in (tampered, crypto.GCM_PREFIX + "%%%", crypto.GCM_PREFIX + "AAAA"):
        with pytest.raises(crypto.DecryptionError) as e:
            crypto.decrypt(bad, column="person.nir")
        assert "impossible de déchiffrer person.nir" in str(e.value)
        assert "1850775123456" not in str(e.value)
