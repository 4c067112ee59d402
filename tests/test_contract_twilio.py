"""The real `twilio` SDK, through TwilioPhone, against Twilio's contract served by Prism.

A small fault-injecting proxy in front of the mock answers 429 or 503 when told to (the
contract declares neither), so retries, backoff and Retry-After are exercised end to end.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import pytest

from channels.base import PermanentFailure, TemporaryFailure
from channels.phone import BridgeCall
from channels.resilience import Backoff, RateLimiter
from channels.twilio_phone import TwilioPhone
from tests.contract_mocks import free_port

SID = "AC" + "0" * 32
CALLEE = "+33612345678"
CALLBACK = "https://relance.example.fr/webhooks/twilio/status"


@dataclass
class Faults:
    """What the proxy does: answer the next statuses itself, then forward to the mock."""

    upstream: str
    statuses: list[int] = field(default_factory=list)
    hits: int = 0
    forwarded: list[dict[str, list[str]]] = field(default_factory=list)


def _handler(faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            faults.hits += 1
            if faults.statuses:
                status = faults.statuses.pop(0)
                out = b'{"code": 20429, "message": "Too many requests", "status": %d}' % status
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                return
            faults.forwarded.append(parse_qs(body.decode(), keep_blank_values=True))
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            r = httpx.post(faults.upstream + self.path, content=body, headers=headers)
            self.send_response(r.status_code)
            self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

    return Proxy


@pytest.fixture
def proxy(twilio_mock: str) -> Iterator[tuple[str, Faults]]:
    """A loopback proxy in front of the Twilio mock; yields its URL and its fault plan."""
    faults = Faults(upstream=twilio_mock)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(faults))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", faults
    server.shutdown()
    server.server_close()


def phone(api_base: str, **kw: object) -> TwilioPhone:
    return TwilioPhone(
        account_sid=SID,
        auth_token="test-token",
        caller_id="+33180000000",
        status_callback=CALLBACK,
        api_base=api_base,
        per_second=100.0,
        **kw,  # type: ignore[arg-type]
    )


def call(key: str = "sophia:1:call:1:dial:1", line: str = "+33140000001") -> BridgeCall:
    return BridgeCall(key=key, adviser_line=line, callee=CALLEE, callback_query=f"key={key}")


def test_a_bridge_returns_the_call_sid(proxy: tuple[str, Faults]) -> None:
    url, faults = proxy
    receipt = phone(url).bridge(call())
    assert receipt.provider_id.startswith("CA") and len(receipt.provider_id) == 34
    sent = faults.forwarded[0]
    assert sent["To"] == ["+33140000001"] and sent["From"] == ["+33180000000"]
    assert sent["StatusCallback"] == [f"{CALLBACK}?key=sophia:1:call:1:dial:1"]
    assert sent["StatusCallbackMethod"] == ["POST"] and "StatusCallbackEvent" not in sent
    twiml = sent["Twiml"][0]
    assert '<Dial callerId="+33180000000">' in twiml and f">{CALLEE}</Number>" in twiml
    assert f'statusCallback="{CALLBACK}?key=sophia:1:call:1:dial:1&amp;leg=callee"' in twiml
    assert 'statusCallbackEvent="initiated ringing answered completed"' in twiml


def test_a_request_the_contract_rejects_is_a_clear_permanent_failure(twilio_mock: str) -> None:
    with pytest.raises(PermanentFailure) as e:
        phone(twilio_mock).bridge(call(line=""))
    message = str(e.value)
    assert "422" in message and "required property 'To'" in message, message
    assert CALLEE not in message and e.value.code == "http_422"


def test_wrong_credentials_are_refused_not_retried(proxy: tuple[str, Faults]) -> None:
    url, faults = proxy
    bad = TwilioPhone(
        account_sid=SID,
        auth_token="",
        caller_id="+33180000000",
        status_callback=CALLBACK,
        api_base=url,
    )
    with pytest.raises(PermanentFailure, match="401"):
        bad.bridge(call())
    assert faults.hits == 1


def test_429_is_retried_after_retry_after_then_succeeds(proxy: tuple[str, Faults]) -> None:
    url, faults = proxy
    faults.statuses = [429, 429]
    sleeps: list[float] = []
    receipt = phone(url, backoff=Backoff(attempts=4, sleep=sleeps.append)).bridge(call())
    assert receipt.provider_id.startswith("CA")
    assert faults.hits == 3 and len(faults.forwarded) == 1
    assert sleeps == [0.0, 0.0]  # what Retry-After said


def test_5xx_is_retried_with_jittered_backoff_then_a_temporary_failure(
    proxy: tuple[str, Faults],
) -> None:
    url, faults = proxy
    faults.statuses = [503] * 10
    sleeps: list[float] = []
    backoff = Backoff(attempts=3, base=0.5, sleep=sleeps.append, rng=random.Random(7))
    with pytest.raises(TemporaryFailure) as e:
        phone(url, backoff=backoff).bridge(call())
    assert faults.hits == 3 and faults.forwarded == []
    assert e.value.code == "http_503" and "3 tries" in str(e.value)
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0
    assert sleeps != [0.0, 0.0]


def test_an_unreachable_twilio_is_a_temporary_failure() -> None:
    sleeps: list[float] = []
    dead = phone(
        f"http://127.0.0.1:{free_port()}", backoff=Backoff(attempts=2, sleep=sleeps.append)
    )
    with pytest.raises(TemporaryFailure) as e:
        dead.bridge(call())
    assert e.value.code == "unreachable" and len(sleeps) == 1


def test_an_invalid_callee_is_refused_before_twilio(proxy: tuple[str, Faults]) -> None:
    url, faults = proxy
    bad = BridgeCall(key="k", adviser_line="+33140000001", callee="0612345678")
    with pytest.raises(PermanentFailure) as e:
        phone(url).bridge(bad)
    assert e.value.code == "invalid_number" and faults.hits == 0


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_the_rate_limit_spaces_calls(proxy: tuple[str, Faults]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(4)] == [0.0, 1.0, 1.0, 1.0]
    assert clock.t == pytest.approx(3.0)
    # The adapter takes a token before each create.
    url, faults = proxy
    twilio = phone(url)
    clock2 = FakeClock()
    twilio.limiter = RateLimiter(1.0, clock=clock2, sleep=clock2.sleep)
    for i in range(3):
        twilio.bridge(call(key=f"k{i}"))
    assert clock2.t == pytest.approx(2.0) and len(faults.forwarded) == 3
