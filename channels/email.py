"""The e-mail port: send a batch of messages, one receipt or error per message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Protocol

from channels.base import ChannelError, PermanentFailure, Receipt, safe_name, write_atomic


@dataclass(frozen=True)
class EmailMessage:
    """One e-mail; the key travels with it so provider events can be matched back."""

    key: str
    to: str
    subject: str
    text: str
    html: str | None = None


class EmailSender(Protocol):
    """An e-mail provider."""

    def send(self, messages: Sequence[EmailMessage]) -> list[Receipt | ChannelError]:
        """Send a batch; the result list lines up with `messages`."""
        ...


def check_address(m: EmailMessage) -> ChannelError | None:
    """A final failure for an address that cannot be sent to (the address is not repeated)."""
    if "@" not in m.to or m.to.startswith("@") or m.to.endswith("@"):
        return PermanentFailure("invalid e-mail address", key=m.key, code="invalid_email")
    return None


class LocalEmail:
    """The embedded sink: one `.eml` file per message under `<folder>/email/`."""

    def __init__(self, folder: Path, sender: str = "ne-pas-repondre@assurance-maladie.fr") -> None:
        self.folder, self.sender = Path(folder) / "email", sender

    def send(self, messages: Sequence[EmailMessage]) -> list[Receipt | ChannelError]:
        """Write each message once (same key, same file)."""
        out: list[Receipt | ChannelError] = []
        for m in messages:
            err = check_address(m)
            if err:
                out.append(err)
                continue
            path = self.folder / f"{safe_name(m.key)}.eml"
            if not path.exists():
                mime = MimeMessage()
                mime["From"], mime["To"], mime["Subject"] = self.sender, m.to, m.subject
                mime["X-Relance-Key"] = m.key
                mime.set_content(m.text)
                if m.html:
                    mime.add_alternative(m.html, subtype="html")
                write_atomic(path, bytes(mime))
            out.append(Receipt(key=m.key, provider_id=path.stem))
        return out


@dataclass
class FakeEmail:
    """An in-memory sender for tests."""

    sent: dict[str, EmailMessage] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail: dict[str, ChannelError] = field(default_factory=dict)

    def send(self, messages: Sequence[EmailMessage]) -> list[Receipt | ChannelError]:
        """Record each message once per key unless told to fail."""
        out: list[Receipt | ChannelError] = []
        for m in messages:
            self.calls.append(m.key)
            err = self.fail.pop(m.key, None) or check_address(m)
            if err:
                out.append(err)
                continue
            self.sent.setdefault(m.key, m)
            out.append(Receipt(key=m.key, provider_id=f"fake-{safe_name(m.key)}"))
        return out
