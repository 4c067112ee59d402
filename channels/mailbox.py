"""The ameli mailbox port: deposit a message in a person's account, read its status."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from channels.base import ChannelError, PermanentFailure, Receipt, safe_name, write_atomic

MAX_BATCH = 500  # the contract's limit of messages per batch deposit


@dataclass(frozen=True)
class MailboxMessage:
    """One message for one person's ameli account (recipient = their NIR)."""

    key: str
    recipient: str
    subject: str
    body: str


class MailboxGateway(Protocol):
    """The insurer's mailbox service."""

    def deposit(self, message: MailboxMessage) -> Receipt:
        """Deposit a message; the same key twice deposits once."""
        ...

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        """Deposit up to MAX_BATCH messages, each once per key; one result per message, in order."""
        ...

    def read_status(self, provider_id: str) -> str:
        """'unread', 'read' or 'unknown'."""
        ...


def deposit_each(
    deposit: Callable[[MailboxMessage], Receipt], messages: Sequence[MailboxMessage]
) -> list[Receipt | ChannelError]:
    """A batch deposit made of single deposits: each message's failure is its own result."""
    out: list[Receipt | ChannelError] = []
    for m in messages:
        try:
            out.append(deposit(m))
        except ChannelError as e:
            out.append(e)
    return out


class LocalMailbox:
    """The embedded sink: one Markdown file per message under `<folder>/mailbox/`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "mailbox"

    def _path(self, key: str) -> Path:
        return self.folder / f"{safe_name(key)}.md"

    def deposit(self, message: MailboxMessage) -> Receipt:
        """Write the message once; a second deposit with the same key returns the same receipt."""
        if not message.recipient:
            raise PermanentFailure("no recipient account", key=message.key, code="no_account")
        path = self._path(message.key)
        if not path.exists():
            write_atomic(path, f"# {message.subject}\n\n{message.body}\n".encode())
        return Receipt(key=message.key, provider_id=path.stem, status="sent")

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        """Each message written once; results in order."""
        return deposit_each(self.deposit, messages)

    def mark_read(self, provider_id: str) -> None:
        """What the person's opening of the message records."""
        write_atomic(self.folder / f"{provider_id}.read", b"")

    def read_status(self, provider_id: str) -> str:
        """Read once its `.read` mark exists."""
        if (self.folder / f"{provider_id}.read").exists():
            return "read"
        return "unread" if (self.folder / f"{provider_id}.md").exists() else "unknown"


@dataclass
class FakeMailbox:
    """An in-memory mailbox for tests: records deposits, can fail on chosen keys or batches."""

    fail: dict[str, Exception] = field(default_factory=dict)
    # Raised by the next batch deposits instead of depositing (a request that failed whole).
    fail_batches: list[Exception] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    deposits: dict[str, MailboxMessage] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    read: set[str] = field(default_factory=set)

    def deposit(self, message: MailboxMessage) -> Receipt:
        """Record the deposit (once per key) unless told to fail."""
        self.calls.append(message.key)
        err = self.fail.pop(message.key, None)
        if err is not None:
            raise err
        self.deposits.setdefault(message.key, message)
        return Receipt(key=message.key, provider_id=f"fake-{safe_name(message.key)}")

    def deposit_batch(self, messages: Sequence[MailboxMessage]) -> list[Receipt | ChannelError]:
        """One batch call (its size recorded), then each message as `deposit` would."""
        if len(messages) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} messages")
        self.batches.append(len(messages))
        if self.fail_batches:
            raise self.fail_batches.pop(0)
        return deposit_each(self.deposit, messages)

    def read_status(self, provider_id: str) -> str:
        """'read' for ids marked read, else 'unread'."""
        return "read" if provider_id in self.read else "unread"

    def dump(self) -> str:
        """The deposits as JSON, for debugging a test."""
        return json.dumps({k: m.subject for k, m in self.deposits.items()}, ensure_ascii=False)
