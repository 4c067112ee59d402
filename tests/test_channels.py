"""The local channel sinks and their fakes: idempotent per key, bad input refused with a reason."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from channels.afnor import AddressError, validate_address
from channels.base import ChannelError, PermanentFailure, Receipt, TemporaryFailure, safe_name
from channels.email import EmailMessage, FakeEmail, LocalEmail
from channels.letters import FakeLetters, Letter, LocalLetters
from channels.mailbox import FakeMailbox, LocalMailbox, MailboxMessage

GOOD = ("MADAME JEANNE DUPONT", "12 RUE DES LILAS", "91000 EVRY-COURCOURONNES")


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (GOOD, None),
        (("MADAME X", "", "  ", "75011 PARIS"), None),
        (("MADAME X", "75011 PARIS CEDEX 11"), None),
        (("75011 PARIS",), "il faut une ligne destinataire"),
        (("A", "B", "C", "D", "E", "F", "75011 PARIS"), "adresse de 7 lignes, 6 au plus"),
        (("MADAME X", "X" * 39, "75011 PARIS"), "ligne 2 de 39 caractères"),
        (("MADAME X", "75011 Paris"), "VILLE EN MAJUSCULES"),
        (("MADAME X", "7501 PARIS"), "code postal à 5 chiffres"),
    ],
)
def test_afnor_addresses(lines: tuple[str, ...], problem: str | None) -> None:
    if problem is None:
        assert validate_address(lines)[-1] == lines[-1]
    else:
        with pytest.raises(AddressError, match=problem):
            validate_address(lines)


def test_errors_say_whether_to_retry() -> None:
    assert TemporaryFailure("busy").retryable and not PermanentFailure("gone").retryable
    e = PermanentFailure("bad", key="k", code="invalid_email")
    assert isinstance(e, ChannelError) and (e.key, e.code, str(e)) == ("k", "invalid_email", "bad")
    assert safe_name("sophia-ald8:12:call:1") == "sophia-ald8_12_call_1"


def test_local_mailbox_deposits_once_and_tracks_reading(tmp_path: Path) -> None:
    box = LocalMailbox(tmp_path)
    m = MailboxMessage(key="c:1:mailbox:1", recipient="1600591000001", subject="S", body="B")
    r1, r2 = box.deposit(m), box.deposit(MailboxMessage(**{**m.__dict__, "body": "changed"}))
    assert r1 == r2 and isinstance(r1, Receipt)
    files = list((tmp_path / "mailbox").glob("*.md"))
    assert len(files) == 1 and files[0].read_text() == "# S\n\nB\n"
    assert box.read_status(r1.provider_id) == "unread"
    box.mark_read(r1.provider_id)
    assert box.read_status(r1.provider_id) == "read" and box.read_status("nope") == "unknown"
    with pytest.raises(PermanentFailure, match="no recipient"):
        box.deposit(MailboxMessage(key="k2", recipient="", subject="S", body="B"))


def test_fake_mailbox_fails_on_demand_then_succeeds() -> None:
    box = FakeMailbox(fail={"k": TemporaryFailure("down")})
    m = MailboxMessage(key="k", recipient="r", subject="s", body="b")
    with pytest.raises(TemporaryFailure):
        box.deposit(m)
    box.deposit(m)
    box.deposit(m)
    assert box.calls == ["k", "k", "k"] and list(box.deposits) == ["k"]


@pytest.mark.parametrize("cls", [LocalEmail, FakeEmail])
def test_email_one_result_per_message_in_order(cls: type, tmp_path: Path) -> None:
    sender = cls(tmp_path) if cls is LocalEmail else cls()
    msgs = [
        EmailMessage(key="a", to="a@example.org", subject="Nouveau message", text="Bonjour"),
        EmailMessage(key="b", to="not-an-address", subject="s", text="t"),
        EmailMessage(key="c", to="c@example.org", subject="s", text="t", html="<p>t</p>"),
    ]
    out = sender.send(msgs)
    assert [type(x).__name__ for x in out] == ["Receipt", "PermanentFailure", "Receipt"]
    assert isinstance(out[1], ChannelError) and out[1].code == "invalid_email"
    again = sender.send(msgs[:1])
    assert isinstance(again[0], Receipt) and again[0].provider_id == out[0].provider_id  # type: ignore[union-attr]
    if cls is LocalEmail:
        eml = (tmp_path / "email" / "a.eml").read_text()
        assert "X-Relance-Key: a" in eml and "Subject: Nouveau message" in eml
        assert len(list((tmp_path / "email").glob("*.eml"))) == 2


def test_local_letters_batch_manifest_and_bad_address(tmp_path: Path) -> None:
    printer = LocalLetters(tmp_path)
    letters = [
        Letter(key="c:1:letter:1", address_lines=GOOD, html="<p>un</p>"),
        Letter(key="c:2:letter:1", address_lines=("M X", "Y" * 40, "91000 EVRY"), html="x"),
        Letter(key="c:3:letter:1", address_lines=GOOD, html="<p>trois</p>"),
    ]
    out = printer.print_batch("b1", letters)
    assert isinstance(out[1], PermanentFailure) and out[1].code == "invalid_address"
    assert isinstance(out[0], Receipt) and isinstance(out[2], Receipt)
    with (tmp_path / "letters" / "b1" / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["sequence"] for r in rows] == ["1", "2"]
    assert [r["key"] for r in rows] == ["c:1:letter:1", "c:3:letter:1"]
    # The same letter in a later batch is not printed twice.
    again = printer.print_batch("b2", letters[:1])
    assert isinstance(again[0], Receipt) and again[0].provider_id == out[0].provider_id
    assert len(list((tmp_path / "letters").rglob("*.html"))) == 2


def test_fake_letters_records_once() -> None:
    p = FakeLetters()
    x = Letter(key="k", address_lines=GOOD, html="h")
    p.print_batch("1", [x])
    p.print_batch("2", [x])
    assert list(p.printed) == ["k"] and p.batches == ["1", "2"]
