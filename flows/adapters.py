"""Channel providers chosen by settings: local sinks by default."""

from __future__ import annotations

from campaigns.dispatch import Adapters
from campaigns.settings import Settings
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox


def build_adapters(settings: Settings) -> Adapters:
    """The adapters the settings name; only the local sinks exist so far."""
    unknown = {
        k: v
        for k, v in {
            "mailbox": settings.mailbox,
            "email": settings.email,
            "letters": settings.letters,
        }.items()
        if v != "local"
    }
    if unknown:
        raise ValueError(f"no such channel provider yet: {unknown}; use 'local'")
    out = settings.outbox_dir
    return Adapters(mailbox=LocalMailbox(out), email=LocalEmail(out), letters=LocalLetters(out))
