"""SendGrid Event Webhook: events applied to the outbox on a real database, signed requests."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.cascade.membership import admit_targets
from campaigns.definition.catalog import load_campaign
from campaigns.feedback.email_events import apply_events
from campaigns.ledger.actions import action_key
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import (
    DELIVERED,
    FAILED_FINAL,
    SENT,
    Action,
    AuditEvent,
    Member,
    MemberEvent,
    Person,
    ProviderEvent,
)
from campaigns.ledger.registry import register_campaign
from campaigns.measurement.why import why
from campaigns.settings import Settings
from console.web.app import create_app
from tests.factories import population

D = load_campaign("sophia-ald8").definition
ANCHOR = date(2026, 6, 15)
NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
STEP = "mailbox_notice"


def sent_notices(engine: Engine, n: int) -> list[str]:
    """n members, each with a notification e-mail SendGrid accepted; their outbox keys."""
    targets, people = population(n, anchor=ANCHOR)
    keys = []
    with session_scope(engine) as s:
        register_campaign(session=s, definition=D, launched=True)
        admit_targets(
            session=s, definition=D, targets=targets, people=people, today=date(2026, 3, 27)
        )
        for m in s.exec(select(Member).order_by(col(Member.id))):
            key = action_key(D.id, m.person_id, STEP, 1)
            s.add(
                Action(
                    key=key,
                    campaign_id=D.id,
                    member_id=m.id or 0,
                    person_id=m.person_id,
                    step=STEP,
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
            keys.append(key)
    return keys


def ev(key: str, kind: str, eid: str, ts: int = TS, **kw: Any) -> dict[str, Any]:
    """An event as SendGrid posts it: custom_args at the top level."""
    return {
        "email": "p0@example.org",
        "timestamp": ts,
        "event": kind,
        "sg_event_id": eid,
        "sg_message_id": "msg.filter0001",
        "relance_key": key,
        **kw,
    }


def apply(engine: Engine, events: list[Any]) -> dict[str, int]:
    with session_scope(engine) as s:
        return apply_events(session=s, events=events, now=NOW + timedelta(minutes=5))


def action(engine: Engine, key: str) -> Action:
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.key == key)).one()
        s.expunge(a)
        return a


def person_of(engine: Engine, key: str) -> Person:
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.key == key)).one()
        p = s.get(Person, a.person_id)
        assert p is not None
        s.expunge(p)
        return p


def member_events(engine: Engine, key: str) -> list[tuple[str, dict[str, Any]]]:
    with session_scope(engine) as s:
        a = s.exec(select(Action).where(Action.key == key)).one()
        rows = s.exec(
            select(MemberEvent)
            .where(MemberEvent.member_id == a.member_id)
            .order_by(col(MemberEvent.id))
        )
        return [(e.kind, dict(e.detail)) for e in rows if e.kind.startswith("email_")]


def test_delivered_marks_the_action_delivered_at_the_event_time(engine: Engine) -> None:
    k = sent_notices(engine, 2)
    later = TS + 90
    counts = apply(engine, [ev(k[0], "processed", "e1"), ev(k[0], "delivered", "e2", later)])
    assert counts == {"processed": 1, "delivered": 1}
    a = action(engine, k[0])
    assert a.state == DELIVERED
    assert a.delivered_at is not None and int(a.delivered_at.timestamp()) == later
    assert action(engine, k[1]).state == SENT  # the other member's e-mail is untouched
    assert [kind for kind, _ in member_events(engine, k[0])] == ["email_delivered"]


def test_a_hard_bounce_fails_the_action_and_invalidates_the_address(engine: Engine) -> None:
    k = sent_notices(engine, 2)
    bounce = ev(
        k[0],
        "bounce",
        "b1",
        type="bounce",
        status="5.1.1",
        reason="550 5.1.1 <p0@example.org>: user unknown",
    )
    assert apply(engine, [bounce]) == {"hard_bounce": 1}
    a = action(engine, k[0])
    assert (a.state, a.reason) == (FAILED_FINAL, "hard_bounce")
    assert a.error is not None and "example.org" not in a.error  # the address is redacted
    assert person_of(engine, k[0]).email_invalid is True
    assert person_of(engine, k[1]).email_invalid is False
    with session_scope(engine) as s:
        audit = s.exec(select(AuditEvent).where(AuditEvent.action == "email_invalid")).all()
        assert [(e.actor, e.target) for e in audit] == [("sendgrid", f"person:{a.person_id}")]
        p = s.get(Person, a.person_id)
        assert p is not None
        story = why(
            session=s, campaign_id=D.id, ben_nir_psa=p.ben_nir_psa, ben_rng_gem=p.ben_rng_gem
        )
    told = "\n".join(line for _, line in story.lines)
    assert "email_bounced" in told and "hard_bounce" in told


def test_a_blocked_bounce_is_recorded_without_downgrading_a_delivery(engine: Engine) -> None:
    k = sent_notices(engine, 1)
    counts = apply(
        engine,
        [
            ev(k[0], "delivered", "d1"),
            ev(k[0], "bounce", "b1", TS + 5, type="blocked", reason="421 try later"),
        ],
    )
    assert counts == {"delivered": 1, "blocked": 1}
    a = action(engine, k[0])
    assert (a.state, a.reason) == (DELIVERED, "blocked")
    assert person_of(engine, k[0]).email_invalid is False


def test_dropped_fails_the_action_with_sendgrid_reason(engine: Engine) -> None:
    k = sent_notices(engine, 2)
    counts = apply(
        engine,
        [
            ev(k[0], "dropped", "x1", reason="Unsubscribed Address"),
            ev(k[1], "dropped", "x2", reason="Bounced Address"),
        ],
    )
    assert counts == {"dropped": 2}
    a = action(engine, k[0])
    assert (a.state, a.reason) == (FAILED_FINAL, "dropped: Unsubscribed Address")
    assert person_of(engine, k[0]).email_invalid is False
    assert person_of(engine, k[1]).email_invalid is True  # SendGrid will never deliver there


def test_an_open_is_recorded_once(engine: Engine) -> None:
    k = sent_notices(engine, 1)
    counts = apply(
        engine,
        [ev(k[0], "delivered", "d1"), ev(k[0], "open", "o1"), ev(k[0], "open", "o2", TS + 60)],
    )
    assert counts == {"delivered": 1, "opened": 1, "opened_again": 1}
    assert [kind for kind, _ in member_events(engine, k[0])] == [
        "email_delivered",
        "email_opened",
    ]
    assert action(engine, k[0]).state == DELIVERED


def test_duplicates_are_applied_once(engine: Engine) -> None:
    k = sent_notices(engine, 1)
    batch = [ev(k[0], "delivered", "d1"), ev(k[0], "open", "o1")]
    assert apply(engine, batch) == {"delivered": 1, "opened": 1}
    assert apply(engine, batch) == {"duplicate": 2}
    assert apply(engine, [ev(k[0], "deferred", "f1"), ev(k[0], "deferred", "f1")]) == {
        "deferred": 1,
        "duplicate": 1,
    }
    assert len(member_events(engine, k[0])) == 2
    with session_scope(engine) as s:
        assert len(s.exec(select(ProviderEvent)).all()) == 3


def test_events_out_of_order_never_resurrect_a_failed_e_mail(engine: Engine) -> None:
    k = sent_notices(engine, 1)
    bounce = ev(k[0], "bounce", "b1", TS + 30, type="bounce", reason="user unknown")
    counts = apply(engine, [bounce, ev(k[0], "processed", "p1"), ev(k[0], "delivered", "d1")])
    assert counts == {"hard_bounce": 1, "processed": 1, "ignored_late": 1}
    a = action(engine, k[0])
    assert (a.state, a.reason, a.delivered_at) == (FAILED_FINAL, "hard_bounce", None)


def test_unknown_keys_and_malformed_events_are_counted_and_ignored(engine: Engine) -> None:
    k = sent_notices(engine, 1)
    counts = apply(
        engine,
        [
            ev("other-app:1:x:1", "delivered", "u1"),
            {k: v for k, v in ev(k[0], "delivered", "u2").items() if k != "relance_key"},
            {"event": "delivered"},
            "not an event",
        ],
    )
    assert counts == {"unknown": 2, "malformed": 2}
    assert action(engine, k[0]).state == SENT
    with session_scope(engine) as s:
        assert s.exec(select(ProviderEvent)).all() == []


# The webhook through HTTP, signed as SendGrid signs it.


@pytest.fixture
def signer() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair; the public half as SendGrid shows it (base64 DER)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sign(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    return base64.b64encode(
        private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()


@pytest.fixture
def hook(engine: Engine, tmp_path: Path, signer: tuple[Any, str]) -> TestClient:
    app = create_app(
        Settings(
            data_dir=tmp_path,
            secret_key="k" * 40,
            sendgrid_webhook_public_key=signer[1],
            webhook_max_age_seconds=300,
        ),
        engine=engine,
    )
    app.state.clock = lambda: NOW
    return TestClient(app)


def post(
    client: TestClient, body: bytes, private: Any, timestamp: int = TS, signature: str | None = None
) -> Any:
    ts = str(timestamp)
    return client.post(
        "/webhooks/sendgrid/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature or sign(private, body, ts),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        },
    )


def test_a_signed_batch_is_applied_once(
    engine: Engine, hook: TestClient, signer: tuple[Any, str]
) -> None:
    k = sent_notices(engine, 2)
    body = json.dumps([ev(k[0], "delivered", "d1"), ev(k[1], "dropped", "x1", reason="Invalid")])
    r = post(hook, body.encode(), signer[0])
    assert r.status_code == 204, r.text
    assert action(engine, k[0]).state == DELIVERED
    assert action(engine, k[1]).state == FAILED_FINAL
    # SendGrid retries a batch it thinks failed: same events, signed again a minute later.
    again = post(hook, body.encode(), signer[0], timestamp=TS + 60)
    assert again.status_code == 204
    assert len(member_events(engine, k[0])) == 1
    with session_scope(engine) as s:
        assert len(s.exec(select(ProviderEvent)).all()) == 2


def test_bad_signatures_and_replays_are_refused_and_change_nothing(
    engine: Engine, hook: TestClient, signer: tuple[Any, str]
) -> None:
    k = sent_notices(engine, 1)
    body = json.dumps([ev(k[0], "delivered", "d1")]).encode()
    other = ec.generate_private_key(ec.SECP256R1())
    assert post(hook, body, other).status_code == 403  # signed with another key
    tampered = body.replace(b"delivered", b"dropped")
    assert (
        post(hook, tampered, signer[0], signature=sign(signer[0], body, str(TS))).status_code == 403
    )
    assert post(hook, body, signer[0], signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert post(hook, body, signer[0], timestamp=TS - 301).status_code == 403  # replayed later
    assert post(hook, body, signer[0], timestamp=TS + 301).status_code == 403
    unsigned = hook.post("/webhooks/sendgrid/events", content=body)
    assert unsigned.status_code == 403
    assert action(engine, k[0]).state == SENT
    assert post(hook, body, signer[0], timestamp=TS - 299).status_code == 204  # inside the window
    assert action(engine, k[0]).state == DELIVERED


def test_a_signed_body_that_is_not_a_list_of_events_is_a_400(
    engine: Engine, hook: TestClient, signer: tuple[Any, str]
) -> None:
    assert post(hook, b'{"event": "delivered"}', signer[0]).status_code == 400
    assert post(hook, b"[{not json", signer[0]).status_code == 400


def test_without_a_configured_key_every_request_is_refused(
    engine: Engine, tmp_path: Path, signer: tuple[Any, str]
) -> None:
    k = sent_notices(engine, 1)
    app = create_app(Settings(data_dir=tmp_path, secret_key="k" * 40), engine=engine)
    app.state.clock = lambda: NOW
    body = json.dumps([ev(k[0], "delivered", "d1")]).encode()
    assert post(TestClient(app), body, signer[0]).status_code == 403
    assert action(engine, k[0]).state == SENT
