"""Agent-bridged calls: dialling once per click, Twilio status callbacks, the signed webhook."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from campaigns.calls.queue import claim_next
from campaigns.calls.telephony import DialError, latest_call, record_status, start_call
from campaigns.cascade.tick import tick
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import (
    Action,
    AuditEvent,
    Opposition,
    Person,
    PhoneCall,
    ProviderEvent,
    User,
)
from campaigns.settings import Settings
from channels.base import PermanentFailure, Receipt, TemporaryFailure
from channels.phone import BridgeCall, FakePhone, LocalPhone
from console.demo.simulator import at
from console.web.app import create_app
from tests.test_console import PW, login, post
from tests.test_services import CALL_DAY, D, setup

NOW = at(CALL_DAY, 10)
LINE = "+33140000001"
TOKEN = "twilio-test-token"
PUBLIC = "https://relance.example.fr"


@dataclass
class CheckingPhone(FakePhone):
    """A fake that checks, from another connection, that the call is on record first."""

    engine: Engine | None = None
    seen: list[PhoneCall] = field(default_factory=list)

    def bridge(self, call: BridgeCall) -> Receipt:
        assert self.engine is not None
        with Session(self.engine) as other:
            row = other.exec(select(PhoneCall).where(PhoneCall.key == call.key)).first()
        assert row is not None, "the provider was called before the call was committed"
        self.seen.append(row)
        return super().bridge(call)


def claimed(engine: Engine, adviser: str = "a") -> int:
    setup(engine, 3)
    tick(engine=engine, definition=D, today=CALL_DAY)
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser=adviser, now=NOW, definitions={D.id: D})
        assert c is not None
        return c.action_id


def dial(engine: Engine, aid: int, phone: Any, adviser: str = "a", **kw: Any) -> PhoneCall:
    with session_scope(engine) as s:
        return start_call(
            session=s,
            action_id=aid,
            adviser=adviser,
            adviser_line=kw.get("line", LINE),
            phone=phone,
            now=kw.get("now", NOW),
        )


def callback(
    engine: Engine, key: str, status: str, *, leg: str | None = "callee", **extra: str
) -> bool:
    params = {"key": key, "CallSid": "CAchild", "CallStatus": status, **extra}
    if leg:
        params["leg"] = leg
    with session_scope(engine) as s:
        return record_status(session=s, params=params, now=NOW + timedelta(seconds=30))


def call_of(engine: Engine, key: str) -> PhoneCall:
    with session_scope(engine) as s:
        row = s.exec(select(PhoneCall).where(PhoneCall.key == key)).one()
        return row


def events(engine: Engine) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(ProviderEvent)).one())


def test_dial_commits_the_call_first_and_a_double_click_dials_once(engine: Engine) -> None:
    aid = claimed(engine)
    phone = CheckingPhone(engine=engine)
    first = dial(engine, aid, phone)
    assert phone.seen and phone.seen[0].call_sid is None and phone.seen[0].status == "initiated"
    again = dial(engine, aid, phone, now=NOW + timedelta(seconds=20))
    assert again.id == first.id and phone.calls == [first.key]
    assert first.key.endswith(":dial:1") and first.call_sid == f"CAfake{first.key}".replace(
        ":", "_"
    )
    placed = phone.placed[first.key]
    assert placed.adviser_line == LINE and placed.callee.startswith("+336")
    assert placed.callback_query == urlencode({"key": first.key})
    # Once the call has ended, the adviser may call again: a new key.
    callback(engine, first.key, "busy", SequenceNumber="1")
    second = dial(engine, aid, phone, now=NOW + timedelta(minutes=1))
    assert second.key.endswith(":dial:2") and len(phone.calls) == 2


def test_a_call_stuck_without_provider_id_is_retried_after_a_while(engine: Engine) -> None:
    aid = claimed(engine)
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None
        s.add(
            PhoneCall(
                key=f"{a.key}:dial:1", action_id=aid, adviser="a", created_at=NOW, updated_at=NOW
            )
        )
    phone = FakePhone()
    assert dial(engine, aid, phone, now=NOW + timedelta(seconds=30)).key.endswith(":dial:1")
    assert phone.calls == []  # maybe in flight: not dialled twice
    later = dial(engine, aid, phone, now=NOW + timedelta(minutes=3))
    assert later.key.endswith(":dial:2") and len(phone.calls) == 1


def test_only_the_holder_of_the_claim_dials(engine: Engine) -> None:
    aid = claimed(engine)
    phone = FakePhone()
    with pytest.raises(DialError, match="pas attribué"):
        dial(engine, aid, phone, adviser="someone-else")
    with pytest.raises(DialError, match="pas attribué"):  # the lease has run out
        dial(engine, aid, phone, now=NOW + timedelta(hours=1))
    with pytest.raises(DialError, match="ligne"):
        dial(engine, aid, phone, line="0140000001")
    assert phone.calls == []
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(PhoneCall)).one() == 0


def test_a_person_opposed_since_the_claim_is_not_dialled(engine: Engine) -> None:
    aid = claimed(engine)
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None
        p = s.get(Person, a.person_id)
        assert p is not None
        s.add(
            Opposition(
                ben_nir_psa=p.ben_nir_psa,
                ben_rng_gem=p.ben_rng_gem,
                canal="phone",
                opposed_on=CALL_DAY,
                source="test",
            )
        )
    phone = FakePhone()
    with pytest.raises(DialError, match="opposed_phone"):
        dial(engine, aid, phone)
    assert phone.calls == []


def test_a_provider_failure_is_kept_on_the_call_and_reported(engine: Engine) -> None:
    aid = claimed(engine)
    with session_scope(engine) as s:
        a = s.get(Action, aid)
        assert a is not None
        key = f"{a.key}:dial:1"
    phone = FakePhone(fail={key: TemporaryFailure("Twilio unavailable after 4 tries")})
    with pytest.raises(DialError, match="Twilio unavailable"):
        dial(engine, aid, phone)
    failed = call_of(engine, key)
    assert failed.status == "failed" and "Twilio unavailable" in (failed.error or "")
    assert failed.call_sid is None
    # The adviser can try again at once: a failed call is over.
    assert dial(engine, aid, phone).key.endswith(":dial:2")


def test_callbacks_ringing_answered_completed(engine: Engine) -> None:
    aid = claimed(engine)
    c = dial(engine, aid, FakePhone())
    assert callback(engine, c.key, "initiated", SequenceNumber="0")
    assert callback(engine, c.key, "ringing", SequenceNumber="1")
    assert call_of(engine, c.key).status == "ringing"
    assert callback(
        engine,
        c.key,
        "in-progress",
        SequenceNumber="2",
        Timestamp="Thu, 16 Apr 2026 08:00:05 +0000",
    )
    answered = call_of(engine, c.key)
    assert answered.status == "answered" and answered.answered_at is not None
    assert answered.answered_at.isoformat() == "2026-04-16T08:00:05+00:00"
    assert callback(engine, c.key, "completed", SequenceNumber="3", CallDuration="127")
    done = call_of(engine, c.key)
    assert (done.status, done.duration_s, done.error) == ("completed", 127, None)
    assert done.ended_at is not None
    with session_scope(engine) as s:
        latest = latest_call(session=s, action_id=aid)
        assert latest is not None and latest.status == "completed"
        # The telephony never decides the adviser's outcome.
        a = s.get(Action, aid)
        assert a is not None and a.outcome is None and a.state == "queued"


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed"])
def test_callbacks_that_end_without_an_answer(engine: Engine, status: str) -> None:
    aid = claimed(engine)
    c = dial(engine, aid, FakePhone())
    callback(engine, c.key, "ringing", SequenceNumber="1")
    callback(engine, c.key, status, SequenceNumber="2", CallDuration="0")
    row = call_of(engine, c.key)
    assert (row.status, row.duration_s, row.answered_at) == (status, 0, None)
    assert row.ended_at is not None


def test_duplicate_callbacks_are_ignored(engine: Engine) -> None:
    aid = claimed(engine)
    c = dial(engine, aid, FakePhone())
    assert callback(engine, c.key, "completed", SequenceNumber="3", CallDuration="60")
    before = call_of(engine, c.key)
    assert not callback(engine, c.key, "completed", SequenceNumber="3", CallDuration="999")
    after = call_of(engine, c.key)
    assert (after.status, after.duration_s, after.updated_at) == (
        before.status,
        60,
        before.updated_at,
    )
    assert events(engine) == 1


def test_a_late_ringing_never_undoes_the_end_of_a_call(engine: Engine) -> None:
    aid = claimed(engine)
    c = dial(engine, aid, FakePhone())
    callback(engine, c.key, "no-answer", SequenceNumber="2")
    assert callback(engine, c.key, "ringing", SequenceNumber="1")
    assert call_of(engine, c.key).status == "no-answer"
    assert events(engine) == 2


def test_the_advisers_leg_counts_only_until_the_person_is_dialled(engine: Engine) -> None:
    aid = claimed(engine)
    c = dial(engine, aid, FakePhone())
    parent = c.call_sid or ""
    # The adviser's own line did not pick up: nobody was dialled.
    assert callback(engine, c.key, "failed", leg=None, CallSid=parent)
    row = call_of(engine, c.key)
    assert row.status == "failed" and row.error == "adviser line: failed"
    c2 = dial(engine, aid, FakePhone())
    # Once the person's leg reports, the adviser's leg no longer changes the call.
    callback(engine, c2.key, "ringing", SequenceNumber="1", ParentCallSid="CAp2")
    callback(engine, c2.key, "completed", leg=None, CallSid="CAp2", CallDuration="9")
    row2 = call_of(engine, c2.key)
    assert row2.status == "ringing" and row2.duration_s is None


def test_local_phone_masks_numbers_and_is_idempotent(tmp_path: Path) -> None:
    phone = LocalPhone(tmp_path)
    call = BridgeCall(key="c:1:call:1:dial:1", adviser_line=LINE, callee="+33612345678")
    first, again = phone.bridge(call), phone.bridge(call)
    assert first == again and first.provider_id == "local-c_1_call_1_dial_1"
    files = list((tmp_path / "phone").glob("*.json"))
    assert len(files) == 1
    text = files[0].read_text()
    assert "+33612345678" not in text and LINE not in text
    assert json.loads(text)["callee"].endswith("78")
    with pytest.raises(PermanentFailure) as bad:
        phone.bridge(BridgeCall(key="k2", adviser_line=LINE, callee="06 12 34 56 78"))
    assert bad.value.code == "invalid_number" and "06 12" not in str(bad.value)


# The console: the dial button and the signed webhook.


def console(engine: Engine, tmp_path: Path, phone: Any, **settings: Any) -> TestClient:
    app = create_app(
        Settings(
            data_dir=tmp_path,
            secret_key="k" * 40,
            extract_dir=tmp_path / "none",
            public_base_url=PUBLIC,
            **settings,
        ),
        engine=engine,
    )
    app.state.clock = lambda: NOW
    app.state.phone = phone
    return TestClient(app, base_url="https://testserver")  # Secure cookies: https


def adviser(engine: Engine, line: str | None) -> None:
    with session_scope(engine) as s:
        create_user(session=s, username="adv", password=PW, role="adviser", phone_line=line)


def test_the_dial_button_places_one_call_and_is_audited(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 2)
    tick(engine=engine, definition=D, today=CALL_DAY)
    adviser(engine, LINE)
    phone = FakePhone()
    c = console(engine, tmp_path, phone)
    login(c, "adv")
    card = post(c, "/calls/next", {}, "/calls").headers["location"]
    r = post(c, f"{card}/dial", {}, card)
    assert r.status_code == 303 and r.headers["location"] == card
    post(c, f"{card}/dial", {}, card)  # a double click
    assert len(phone.calls) == 1
    status = c.get(f"{card}/telephony").json()
    assert status["status"] == "initiated"
    assert c.post(f"{card}/dial", data={"csrf": "forged"}).status_code == 403
    with session_scope(engine) as s:
        dials = s.exec(select(AuditEvent).where(AuditEvent.action == "dial")).all()
        assert len(dials) == 2 and dials[0].actor == "adv"


def test_no_line_no_call(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 2)
    tick(engine=engine, definition=D, today=CALL_DAY)
    adviser(engine, None)
    phone = FakePhone()
    c = console(engine, tmp_path, phone)
    login(c, "adv")
    card = post(c, "/calls/next", {}, "/calls").headers["location"]
    r = post(c, f"{card}/dial", {}, card)
    assert "?e=" in r.headers["location"] and phone.calls == []
    assert "ligne" in c.get(r.headers["location"]).text


def signed(
    client: TestClient, query: dict[str, str], form: dict[str, str], token: str = TOKEN
) -> Any:
    path = "/webhooks/twilio/status?" + urlencode(query)
    sig = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": sig})


def test_the_status_webhook_checks_signatures_and_ignores_duplicates(
    engine: Engine, tmp_path: Path
) -> None:
    aid = claimed(engine)
    call = dial(engine, aid, FakePhone())
    c = console(engine, tmp_path, FakePhone(), twilio_auth_token=TOKEN)
    query = {"key": call.key, "leg": "callee"}
    form = {
        "CallSid": "CAchild",
        "ParentCallSid": call.call_sid or "",
        "CallStatus": "completed",
        "CallDuration": "42",
        "SequenceNumber": "3",
        "To": "+33612340000",
    }
    forged = signed(c, query, form, token="not-the-token")
    assert forged.status_code == 403 and events(engine) == 0
    path = "/webhooks/twilio/status?" + urlencode(query)
    sig = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + path, form)}
    other = "/webhooks/twilio/status?" + urlencode({**query, "key": "other"})
    assert c.post(other, data=form, headers=sig).status_code == 403
    assert c.post(path, data={**form, "CallDuration": "1"}, headers=sig).status_code == 403
    assert c.post(path, data=form).status_code == 403  # no signature at all
    assert call_of(engine, call.key).status == "initiated" and events(engine) == 0
    ok = signed(c, query, form)
    assert ok.status_code == 204
    row = call_of(engine, call.key)
    assert (row.status, row.duration_s) == ("completed", 42)
    assert signed(c, query, form).status_code == 204
    assert events(engine) == 1
    with session_scope(engine) as s:
        ev = s.exec(select(ProviderEvent)).one()
        assert "To" not in ev.detail and ev.ref == call.key


def test_the_status_webhook_is_closed_without_a_token(engine: Engine, tmp_path: Path) -> None:
    c = console(engine, tmp_path, FakePhone())
    form = {"CallSid": "CA1", "CallStatus": "ringing"}
    sig = RequestValidator("").compute_signature(PUBLIC + "/webhooks/twilio/status", form)
    r = c.post("/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": sig})
    assert r.status_code == 403 and events(engine) == 0


def test_users_add_takes_the_advisers_line(platform: Path) -> None:
    from typer.testing import CliRunner

    from campaigns.ledger.db import get_engine
    from console.cli import app

    def add(name: str, line: str) -> Any:
        args = ["users", "add", name, "--role", "adviser", "--phone-line", line]
        return CliRunner().invoke(app, [*args, "--password-stdin"], input=PW + "\n")

    assert add("adv1", LINE).exit_code == 0
    bad = add("adv2", "01 40 00 00 01")
    assert bad.exit_code == 2 and "E.164" in bad.output
    with session_scope(get_engine()) as s:
        lines = {u.username: u.phone_line for u in s.exec(select(User))}
    assert lines == {"adv1": LINE}
