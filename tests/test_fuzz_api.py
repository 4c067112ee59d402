"""Schemathesis over the console's OpenAPI: no request makes a 5xx, no unsigned callback writes.

The app runs on a temporary SQLite ledger holding one campaign, a few members and their
actions, with the Twilio and SendGrid webhooks configured. Every operation is fuzzed twice:
anonymously, and with an admin session and its CSRF header. The webhooks read their raw
request, so FastAPI does not document what providers send: the test adds it to the schema
(Twilio's form and signature header, SendGrid's JSON batch and its signature headers) so the
fuzzer sends bodies of the right shape. A fuzzed callback has no valid signature: it must be
refused (403) or malformed (400/422), and the ledger's provider events, phone calls and
actions must be exactly as before. (Correctly signed replays are in test_sendgrid.py and
test_phone.py.)
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.cascade.membership import admit_targets
from campaigns.definition.catalog import load_campaign
from campaigns.ledger.accounts import create_user
from campaigns.ledger.actions import action_key
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.ledger.models import SENT, Action, Member
from campaigns.ledger.registry import register_campaign
from campaigns.settings import Settings
from console.web.app import create_app
from tests.factories import population
from tests.test_authz_matrix import MATRIX

PW = "correct horse battery"
PUBLIC = "https://relance.example.fr"
WEBHOOKS = {"/webhooks/twilio/status", "/webhooks/sendgrid/events"}
GUARDED = ("providerevent", "phonecall", "action")
EXAMPLES = 30
D = load_campaign("sophia-ald8").definition
NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

# Every operation is fuzzed; none is excluded.
OPERATIONS = sorted(MATRIX)


@dataclass
class World:
    engine: Engine
    app: Any
    schema: Any
    cookies: dict[str, str]
    csrf: str


def _seed(engine: Engine) -> None:
    targets, people = population(3, anchor=date(2026, 6, 15))
    with session_scope(engine) as s:
        create_user(session=s, username="admin", password=PW, role="admin")
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=date(2026, 3, 27)
        )
        for m in s.exec(select(Member).order_by(col(Member.id))):
            s.add(
                Action(
                    key=action_key(D.id, m.person_id, "mailbox_notice", 1),
                    campaign_id=D.id,
                    member_id=m.id or 0,
                    person_id=m.person_id,
                    step="mailbox_notice",
                    channel="email",
                    attempt=1,
                    due_on=NOW.date(),
                    state=SENT,
                    provider_id=f"msg{m.id}.0",
                    sent_at=NOW,
                    done_on=NOW.date(),
                    created_at=NOW,
                    updated_at=NOW,
                )
            )


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}


def _document_webhooks(raw: dict[str, Any]) -> dict[str, Any]:
    """What Twilio and SendGrid send, added to the two raw-request operations."""
    raw = copy.deepcopy(raw)
    twilio = raw["paths"]["/webhooks/twilio/status"]["post"]
    twilio["parameters"] = [
        _header("X-Twilio-Signature"),
        {"name": "key", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "leg", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    field = {"type": "string"}
    twilio["requestBody"] = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        k: field
                        for k in (
                            "CallSid",
                            "ParentCallSid",
                            "CallStatus",
                            "CallDuration",
                            "SequenceNumber",
                            "Timestamp",
                            "To",
                        )
                    },
                }
            }
        },
    }
    sendgrid = raw["paths"]["/webhooks/sendgrid/events"]["post"]
    sendgrid["parameters"] = [
        _header("X-Twilio-Email-Event-Webhook-Signature"),
        _header("X-Twilio-Email-Event-Webhook-Timestamp"),
    ]
    event = {
        "type": "object",
        "properties": {
            "sg_event_id": field,
            "sg_message_id": field,
            "event": {"enum": ["delivered", "bounce", "dropped", "open", "blocked", "deferred"]},
            "timestamp": {"type": "integer"},
            "relance_key": field,
            "reason": field,
            "type": field,
        },
    }
    sendgrid["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": event}}},
    }
    return raw


def _login(app: Any) -> tuple[dict[str, str], str]:
    c = TestClient(app, base_url="https://testserver")  # Secure cookies: https
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert token
    r = c.post(
        "/login",
        data={"username": "admin", "password": PW, "csrf": token.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:200]
    fresh = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
    assert fresh
    return {"relance_session": c.cookies["relance_session"]}, fresh.group(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    engine = make_engine(f"sqlite:///{tmp / 'fuzz.db'}")
    upgrade(engine)
    _seed(engine)
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    app = create_app(
        Settings(
            data_dir=tmp,
            secret_key="k" * 40,
            extract_dir=tmp / "none",
            openapi=True,
            public_base_url=PUBLIC,
            twilio_auth_token="twilio-token-for-tests",
            sendgrid_webhook_public_key=public,
            login_max_failures_per_address=10_000,
        ),
        engine=engine,
    )
    app.state.clock = lambda: NOW
    served = TestClient(app).get("/openapi.json")
    assert served.status_code == 200
    schema = schemathesis.openapi.from_dict(_document_webhooks(served.json()))
    schema.app = app
    cookies, csrf = _login(app)
    yield World(engine, app, schema, cookies, csrf)
    engine.dispose()


def _snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as c:
        return {
            t: [tuple(r) for r in c.execute(text(f"SELECT * FROM {t} ORDER BY 1"))] for t in GUARDED
        }


def test_the_schema_is_not_served_by_default(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, secret_key="k" * 40))
    assert TestClient(app).get("/openapi.json").status_code == 404


def test_every_route_is_fuzzed(world: World) -> None:
    documented = {
        (m.upper(), p) for p, ops in world.schema.raw_schema["paths"].items() for m in ops
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize("who", ["anonymous", "admin"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda v: str(v))
def test_fuzz(world: World, who: str, method: str, path: str) -> None:
    operation = world.schema[path][method]
    before = _snapshot(world.engine)
    logged_in = who == "admin"
    seen: list[int] = []

    @given(case=operation.as_strategy(), real=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def run(case: Any, real: bool) -> None:
        if real and case.path_parameters:
            # Half the cases name the seeded campaign and rows, to get past the 404s.
            known = {"cid": D.id, "mid": 1, "aid": 1}
            case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
        extra = {"X-CSRF-Token": world.csrf} if logged_in else None
        response = case.call(
            headers=extra, cookies=world.cookies if logged_in else None, allow_redirects=False
        )
        case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
        seen.append(response.status_code)
        if path in WEBHOOKS:
            # No fuzzed request carries a valid signature: refused or malformed, never applied.
            assert response.status_code in (400, 403, 422), response.text[:200]

    run()
    assert seen
    if path in WEBHOOKS:
        assert _snapshot(world.engine) == before
