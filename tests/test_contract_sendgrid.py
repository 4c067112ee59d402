"""The real `sendgrid` SDK against SendGrid's v3 contract (Prism), behind a fault proxy."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action
from channels.base import PermanentFailure, Receipt, TemporaryFailure
from channels.email import EmailMessage
from channels.resilience import Backoff, RateLimiter
from channels.sendgrid_email import SendGridEmail
from console.demo.simulator import at
from tests.fault_proxy import Fault, FaultProxy, fault_proxy

SEND = "/v3/mail/send"
SUBJECT = "Vous avez un nouveau message dans votre compte ameli"
TEXT = "Bonjour,\n\nUn nouveau message vous attend dans la messagerie de votre compte ameli.\n"


@pytest.fixture
def proxy(sendgrid_mock: str) -> Iterator[FaultProxy]:
    with fault_proxy(sendgrid_mock) as p:
        yield p


def adapter(url: str, sleeps: list[float] | None = None, **kw: object) -> SendGridEmail:
    backoff = Backoff(attempts=3, sleep=(sleeps if sleeps is not None else []).append)
    return SendGridEmail(
        api_key="SG.test-key",
        host=url,
        sender="ne-pas-repondre@assurance-maladie.fr",
        per_second=1000.0,
        backoff=backoff,
        **kw,  # type: ignore[arg-type]
    )


def notices(n: int, *, subject: str = SUBJECT, start: int = 0) -> list[EmailMessage]:
    return [
        EmailMessage(
            key=f"sophia-ald8:{i}:mailbox_notice:1",
            to=f"p{i}@example.org",
            subject=subject,
            text=TEXT,
        )
        for i in range(start, start + n)
    ]


def test_2500_same_notices_go_in_three_requests_with_their_keys(proxy: FaultProxy) -> None:
    msgs = notices(2500)
    results = adapter(proxy.url).send(msgs)
    assert all(isinstance(r, Receipt) for r in results), results[:3]
    assert [r.key for r in results] == [m.key for m in msgs]
    bodies = [json.loads(b) for b in proxy.bodies(SEND)]
    assert [len(b["personalizations"]) for b in bodies] == [1000, 1000, 500]
    sent = [
        (p["to"][0]["email"], p["custom_args"]["relance_key"])
        for b in bodies
        for p in b["personalizations"]
    ]
    assert sent == [(m.to, m.key) for m in msgs]
    assert {b["subject"] for b in bodies} == {SUBJECT}
    assert bodies[0]["content"] == [{"type": "text/plain", "value": TEXT}]
    assert bodies[0]["from"] == {"email": "ne-pas-repondre@assurance-maladie.fr"}
    assert all(s.headers.get("Authorization") == "Bearer SG.test-key" for s in proxy.requests(SEND))


def test_each_content_is_its_own_request(proxy: FaultProxy) -> None:
    msgs = notices(3) + notices(2, subject="Autre objet", start=3) + notices(1, start=5)
    results = adapter(proxy.url).send(msgs)
    assert all(isinstance(r, Receipt) for r in results)
    bodies = [json.loads(b) for b in proxy.bodies(SEND)]
    assert sorted((b["subject"], len(b["personalizations"])) for b in bodies) == [
        ("Autre objet", 2),
        (SUBJECT, 4),
    ]


def test_a_request_the_contract_rejects_is_a_readable_permanent_failure(
    proxy: FaultProxy,
) -> None:
    sg = adapter(proxy.url)
    body = sg.body(notices(2), SUBJECT, TEXT, None)
    del body["personalizations"]
    results = sg.post(body, ["k1", "k2"])
    assert [type(r) for r in results] == [PermanentFailure, PermanentFailure]
    message = str(results[0])
    assert message.startswith("SendGrid refused the request (400)"), message
    assert "personalizations" in message
    assert proxy.count(SEND) == 1  # a refusal is not retried


def test_an_empty_sender_is_refused_for_every_message(proxy: FaultProxy) -> None:
    sleeps: list[float] = []
    sg = SendGridEmail(
        api_key="SG.k", host=proxy.url, sender="", backoff=Backoff(sleep=sleeps.append)
    )
    results = sg.send(notices(3))
    assert all(isinstance(r, PermanentFailure) and not r.retryable for r in results)
    assert str(results[0]).startswith("SendGrid refused the request (400): from.email:")
    assert sleeps == [] and proxy.count(SEND) == 1


def test_429_twice_then_accepted_backs_off_as_told(proxy: FaultProxy) -> None:
    sleeps: list[float] = []
    proxy.inject(Fault(429, retry_after=0), times=2)
    results = adapter(proxy.url, sleeps).send(notices(5))
    assert all(isinstance(r, Receipt) for r in results)
    assert proxy.count(SEND) == 3 and sleeps == [0.0, 0.0]
    assert [s.fault is not None for s in proxy.requests(SEND)] == [True, True, False]


def test_503_and_dropped_connections_end_in_temporary_failures(proxy: FaultProxy) -> None:
    sleeps: list[float] = []
    proxy.inject(Fault.drop())
    proxy.inject(Fault(503), times=None)
    results = adapter(proxy.url, sleeps).send(notices(4))
    assert all(isinstance(r, TemporaryFailure) and r.retryable for r in results)
    assert [r.key for r in results] == [m.key for m in notices(4)]
    assert proxy.count(SEND) == 3  # Backoff(attempts=3)
    assert len(sleeps) == 2 and all(0 <= s <= 1.0 for s in sleeps)  # jittered exponential


def test_an_invalid_address_is_refused_locally_and_never_sent(
    proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    msgs = notices(2)
    bad = EmailMessage(
        key="sophia-ald8:9:mailbox_notice:1", to="nobody@", subject=SUBJECT, text=TEXT
    )
    results = adapter(proxy.url).send([msgs[0], bad, msgs[1]])
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert isinstance(results[1], PermanentFailure) and results[1].code == "invalid_email"
    sent = [
        p["to"][0]["email"] for b in proxy.bodies(SEND) for p in json.loads(b)["personalizations"]
    ]
    assert sent == [msgs[0].to, msgs[1].to]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "@example.org" not in logged and "SG.test-key" not in logged


def test_only_the_recipients_sendgrid_names_fail(proxy: FaultProxy) -> None:
    msgs = notices(3)
    err = {"errors": [{"field": "personalizations.1.to.0.email", "message": "Invalid email"}]}
    proxy.inject(
        Fault(400, body=json.dumps(err).encode(), headers=(("Content-Type", "application/json"),))
    )
    results = adapter(proxy.url).send(msgs)
    assert isinstance(results[1], PermanentFailure) and results[1].code == "refused_recipient"
    assert "personalizations.1.to.0.email: Invalid email" in str(results[1])
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    second = json.loads(proxy.bodies(SEND)[1])
    assert [p["to"][0]["email"] for p in second["personalizations"]] == [msgs[0].to, msgs[2].to]


def test_an_address_the_contract_refuses_fails_alone(proxy: FaultProxy) -> None:
    msgs = notices(3)
    odd = EmailMessage(key=msgs[1].key, to="jean dupont@example.org", subject=SUBJECT, text=TEXT)
    results = adapter(proxy.url).send([msgs[0], odd, msgs[2]])
    assert isinstance(results[1], PermanentFailure) and results[1].code == "refused_recipient"
    assert "personalizations.1.to.0.email" in str(results[1])
    assert "jean dupont" not in str(results[1])  # addresses never end up in errors
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert proxy.count(SEND) == 2


def test_receipts_carry_sendgrid_message_id(proxy: FaultProxy) -> None:
    proxy.inject(Fault(202, headers=(("X-Message-Id", "W9mJ3aQ"),)))
    results = adapter(proxy.url).send(notices(2))
    assert [(r.provider_id, r.status) for r in results if isinstance(r, Receipt)] == [
        ("W9mJ3aQ.0", "sent"),
        ("W9mJ3aQ.1", "sent"),
    ]


def test_the_dispatcher_sends_notices_through_sendgrid_once(
    engine: Engine, tmp_path: Path, proxy: FaultProxy
) -> None:
    from tests.test_dispatch import MAILBOX_DAY, C, adapters, setup, states

    setup(engine, 12, MAILBOX_DAY, telephone=None)
    now = at(MAILBOX_DAY, 8)
    local = adapters(tmp_path)
    dispatch(
        engine=engine, campaign=C, channel="mailbox", adapters=local, today=MAILBOX_DAY, now=now
    )
    sg = Adapters(mailbox=local.mailbox, email=adapter(proxy.url), letters=local.letters)
    first = dispatch(
        engine=engine, campaign=C, channel="email", adapters=sg, today=MAILBOX_DAY, now=now
    )
    assert first["sent"] == len(states(engine, "email")) > 0
    assert set(states(engine, "email")) == {"sent"}
    bodies = [json.loads(b) for b in proxy.bodies(SEND)]
    assert len(bodies) == 1  # every notice has the same text: one request
    keys = [p["custom_args"]["relance_key"] for p in bodies[0]["personalizations"]]
    with session_scope(engine) as s:
        assert sorted(keys) == sorted(
            a.key for a in s.exec(select(Action).where(Action.channel == "email"))
        )
    assert "Objet" not in bodies[0]["content"][0]["value"]
    again = dispatch(
        engine=engine, campaign=C, channel="email", adapters=sg, today=MAILBOX_DAY, now=now
    )
    assert again == {} and proxy.count(SEND) == 1


def test_requests_are_paced_by_the_rate_limit(proxy: FaultProxy) -> None:
    t = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        t[0] += s

    sg = adapter(proxy.url)
    sg.limiter = RateLimiter(2.0, clock=lambda: t[0], sleep=sleep)
    msgs = [m for i in range(4) for m in notices(1, subject=f"objet {i}", start=i)]
    assert all(isinstance(r, Receipt) for r in sg.send(msgs))
    assert proxy.count(SEND) == 4
    assert waits == [0.5, 0.5]  # a burst of 2, then one request every half second
