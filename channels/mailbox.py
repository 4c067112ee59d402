"""The ameli mailbox port: deposit a message in a person's account, read its status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from channels.base import PermanentFailure, Receipt, safe_name, write_atomic


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

    def read_status(self, provider_id: str) -> str:
        """'unread', 'read' or 'unknown'."""
        ...


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
    """An in-memory mailbox for tests: records deposits, can fail on chosen keys."""

    fail: dict[str, Exception] = field(default_factory=dict)
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

    def read_status(self, provider_id: str) -> str:
        """'read' for ids marked read, else 'unread'."""
        return "read" if provider_id in self.read else "unread"

    def dump(self) -> str:
        """The deposits as JSON, for debugging a test."""
        return json.dumps({k: m.subject for k, m in self.deposits.items()}, ensure_ascii=False)
