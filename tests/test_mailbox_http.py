"""The HTTP mailbox adapter against its own contract (Prism) and under faults."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action
from channels.base import PermanentFailure, Receipt, TemporaryFailure
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import MailboxMessage
from channels.mailbox_http import HttpMailbox
from channels.resilience import Backoff
from console.demo.simulator import at
from tests.crash.idempotent_mock import provider_mock
from tests.factories import valid_nir
from tests.test_dispatch import MAILBOX_DAY, C, setup

NIR = valid_nir(7)
EXAMPLE_ID = "msg_7f3c2a9e41"  # the contract's example


def message(key: str = "sophia-ald8:7:mailbox:1", nir: str = NIR) -> MailboxMessage:
    return MailboxMessage(key=key, recipient=nir, subject="Votre ALD", body="Bonjour **M.**")


def no_sleep_backoff(sleeps: list[float], attempts: int = 4) -> Backoff:
    return Backoff(attempts=attempts, base=0.5, cap=30.0, sleep=sleeps.append, rng=random.Random(1))


def test_deposit_returns_the_contract_example_id(mailbox_mock: str) -> None:
    box = HttpMailbox(base_url=mailbox_mock, token="t0k3n")
    r = box.deposit(message())
    assert (r.provider_id, r.status, r.key) == (EXAMPLE_ID, "sent", "sophia-ald8:7:mailbox:1")


def test_read_status_from_the_contract(mailbox_mock: str) -> None:
    assert HttpMailbox(base_url=mailbox_mock, token="t").read_status(EXAMPLE_ID) == "read"


def test_a_nir_the_contract_rejects_is_a_readable_permanent_failure(mailbox_mock: str) -> None:
    bad = "3" + NIR[1:]  # sex digit 3 does not exist
    with pytest.raises(PermanentFailure) as e:
        HttpMailbox(base_url=mailbox_mock, token="t").deposit(message(nir=bad))
    text = str(e.value)
    assert e.value.code == "rejected_422" and "422" in text and "Invalid message" in text
    assert "recipient.nir must match pattern" in text
    assert bad not in text and NIR[1:] not in text


def test_a_key_longer_than_the_contract_allows_is_refused(mailbox_mock: str) -> None:
    with pytest.raises(PermanentFailure) as e:
        HttpMailbox(base_url=mailbox_mock, token="t").deposit(message(key="x" * 181))
    assert "idempotency-key" in str(e.value).lower()


def test_no_account_is_a_permanent_failure_with_its_code(mailbox_mock: str) -> None:
    client = httpx.Client(headers={"Prefer": "code=404"})
    box = HttpMailbox(base_url=mailbox_mock, token="t", client=client)
    with pytest.raises(PermanentFailure) as e:
        box.deposit(message())
    assert e.value.code == "no_account" and "No ameli account" in str(e.value)


def scripted(
    answers: list[Callable[[httpx.Request], httpx.Response]], seen: list[httpx.Request]
) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)(request)

    return httpx.Client(transport=httpx.MockTransport(handler))


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        201, json={"id": "m1", "status": "unread", "deposited_at": "2026-05-01T08:00:00Z"}
    )


def status(code: int, retry_after: str | None = None) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return lambda _: httpx.Response(code, headers=headers, json={"title": "busy", "status": code})


def test_429_then_503_are_retried_with_the_same_key_honouring_retry_after() -> None:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    client = scripted([status(429, "3"), status(503), ok], seen)
    box = HttpMailbox(
        base_url="http://mb", token="t", client=client, backoff=no_sleep_backoff(sleeps)
    )
    r = box.deposit(message())
    assert r.provider_id == "m1" and len(seen) == 3
    assert {q.headers["Idempotency-Key"] for q in seen} == {"sophia-ald8:7:mailbox:1"}
    assert seen[0].headers["Authorization"] == "Bearer t"
    assert sleeps[0] == 3.0  # Retry-After
    assert 0 <= sleeps[1] <= 1.0  # full jitter on base * 2**1


def test_retries_exhausted_become_a_temporary_failure() -> None:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    client = scripted([status(503)] * 3, seen)
    box = HttpMailbox(
        base_url="http://mb", token="t", client=client, backoff=no_sleep_backoff(sleeps, 3)
    )
    with pytest.raises(TemporaryFailure) as e:
        box.deposit(message())
    assert len(seen) == 3 and len(sleeps) == 2 and e.value.code == "unavailable"


def test_a_transport_error_is_retried() -> None:
    seen: list[httpx.Request] = []

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = scripted([boom, ok], seen)
    box = HttpMailbox(base_url="http://mb", token="t", client=client, backoff=no_sleep_backoff([]))
    assert box.deposit(message()).provider_id == "m1" and len(seen) == 2


def test_a_4xx_is_not_retried() -> None:
    seen: list[httpx.Request] = []
    client = scripted([status(400)], seen)
    box = HttpMailbox(base_url="http://mb", token="t", client=client, backoff=no_sleep_backoff([]))
    with pytest.raises(PermanentFailure):
        box.deposit(message())
    assert len(seen) == 1


def test_dispatch_through_the_http_mailbox(
    engine: Engine, tmp_path: Path, mailbox_mock: str
) -> None:
    # The provider side honours each message's key in front of Prism (which checks each
    # batch against the contract and answers its example).
    setup(engine, 6, MAILBOX_DAY, telephone=None)
    with session_scope(engine) as s:
        queued = len(list(s.exec(select(Action).where(Action.channel == "mailbox"))))
    assert queued > 0
    now = at(MAILBOX_DAY, 8)
    with provider_mock(mailbox_mock, "mailbox") as mock:
        adapters = Adapters(
            mailbox=HttpMailbox(base_url=mock.url, token="t"),
            email=LocalEmail(tmp_path),
            letters=LocalLetters(tmp_path),
            mailbox_batch=2,
            mailbox_in_flight=2,
        )
        rep = dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters,
            today=MAILBOX_DAY,
            now=now,
        )
        assert rep["sent"] == queued and rep["notices_planned"] == queued
        assert mock.counts.refused == 0 and mock.counts.requests == -(-queued // 2)
        with session_scope(engine) as s:
            sent = list(s.exec(select(Action).where(Action.channel == "mailbox")))
            assert {a.state for a in sent} == {"sent"}
            assert {a.key: [a.provider_id] for a in sent} == dict(mock.counts.ids)
            assert all(a.sent_at == now for a in sent)
            notices = list(s.exec(select(Action).where(Action.channel == "email")))
            assert len(notices) == queued and {a.state for a in notices} == {"queued"}
        again = dispatch(
            engine=engine,
            campaign=C,
            channel="mailbox",
            adapters=adapters,
            today=MAILBOX_DAY,
            now=now + timedelta(hours=1),
        )
        assert again == {} and mock.counts.total_effects == queued


EXAMPLE_KEYS = ["sophia-ald8:42:mailbox:1", "sophia-ald8:43:mailbox:1", "sophia-ald8:44:mailbox:1"]


def test_batch_results_as_the_contract_gives_them(mailbox_mock: str) -> None:
    box = HttpMailbox(base_url=mailbox_mock, token="t")
    other = "sophia-ald8:45:mailbox:1"  # not in the contract's example answer
    out = box.deposit_batch(
        [message(k, valid_nir(i)) for i, k in enumerate([*EXAMPLE_KEYS, other])]
    )
    deposited, replay, no_account, unanswered = out
    assert isinstance(deposited, Receipt) and deposited.provider_id == EXAMPLE_ID
    assert isinstance(replay, Receipt) and replay.provider_id == "msg_1b2c3d4e5f"
    assert isinstance(no_account, PermanentFailure) and no_account.code == "no_account"
    assert "Le destinataire n'a pas de compte ameli" in str(no_account)
    assert isinstance(unanswered, TemporaryFailure) and unanswered.code == "no_answer"
    assert [r.key for r in out] == [*EXAMPLE_KEYS, other]


def test_a_message_the_contract_refuses_fails_alone_the_others_go_again(
    mailbox_mock: str,
) -> None:
    bad = "3" + NIR[1:]
    msgs = [message(k, valid_nir(i)) for i, k in enumerate(EXAMPLE_KEYS)]
    msgs.insert(1, message("sophia-ald8:9:mailbox:1", bad))
    out = HttpMailbox(base_url=mailbox_mock, token="t").deposit_batch(msgs)
    assert isinstance(out[1], PermanentFailure) and out[1].code == "rejected_422"
    assert "messages.1.recipient.nir must match pattern" in str(out[1])
    assert bad not in str(out[1]) and NIR[1:] not in str(out[1])
    # Sent again without it: the contract's example answer for the three others.
    assert isinstance(out[0], Receipt) and isinstance(out[2], Receipt)
    assert isinstance(out[3], PermanentFailure) and out[3].code == "no_account"


def batch_answer(results: list[dict[str, object]]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(200, json={"results": results})


def test_a_batch_request_that_keeps_failing_is_a_temporary_failure_for_each() -> None:
    seen: list[httpx.Request] = []
    client = scripted([status(503)] * 3, seen)
    box = HttpMailbox(
        base_url="http://mb", token="t", client=client, backoff=no_sleep_backoff([], 3)
    )
    out = box.deposit_batch([message("a:1"), message("a:2")])
    assert len(seen) == 3 and seen[0].url.path == "/v1/message-batches"
    assert [(type(r), r.key, getattr(r, "code", "")) for r in out] == [
        (TemporaryFailure, "a:1", "unavailable"),
        (TemporaryFailure, "a:2", "unavailable"),
    ]
    assert [m["idempotency_key"] for m in json.loads(seen[0].content)["messages"]] == ["a:1", "a:2"]


def test_each_message_of_a_batch_gets_its_own_result() -> None:
    seen: list[httpx.Request] = []
    answer = batch_answer(
        [
            {"idempotency_key": "a:3", "status": 429, "problem": {"title": "Trop de demandes"}},
            {"idempotency_key": "a:1", "status": 201, "id": "m1"},
            {"idempotency_key": "a:2", "status": 200, "id": "m0"},
            {"idempotency_key": "a:4", "status": 422, "problem": {"title": "Message invalide"}},
        ]
    )
    box = HttpMailbox(base_url="http://mb", token="t", client=scripted([answer], seen))
    msgs = [message(f"a:{i}") for i in range(1, 6)] + [message("a:6", nir="")]
    out = box.deposit_batch(msgs)
    assert len(seen) == 1 and len(json.loads(seen[0].content)["messages"]) == 5
    assert [getattr(r, "provider_id", None) for r in out[:2]] == ["m1", "m0"]
    assert isinstance(out[2], TemporaryFailure) and out[2].code == "rate_limited"
    assert isinstance(out[3], PermanentFailure) and out[3].code == "rejected_422"
    assert "Message invalide" in str(out[3])
    assert isinstance(out[4], TemporaryFailure) and out[4].code == "no_answer"
    assert isinstance(out[5], PermanentFailure) and out[5].code == "no_account"


def test_more_than_500_messages_is_not_one_batch() -> None:
    box = HttpMailbox(base_url="http://mb", token="t", client=scripted([], []))
    with pytest.raises(ValueError, match="500"):
        box.deposit_batch([message(f"a:{i}") for i in range(501)])
