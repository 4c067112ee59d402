"""Channel providers chosen by settings: local sinks by default."""

from __future__ import annotations

from campaigns.dispatch import Adapters
from campaigns.settings import Settings
from channels.email import LocalEmail
from channels.letters import LetterPrinter, LocalLetters
from channels.mailbox import LocalMailbox
from channels.pdf_letters import PdfLetters


def build_adapters(settings: Settings) -> Adapters:
    """The adapters the settings name: local sinks, and letters as PDF print batches."""
    unknown = {
        k: v
        for k, v in {"mailbox": settings.mailbox, "email": settings.email}.items()
        if v != "local"
    }
    if settings.letters not in ("local", "pdf"):
        unknown["letters"] = settings.letters
    if unknown:
        raise ValueError(f"no such channel provider yet: {unknown}; use 'local' (letters: 'pdf')")
    out = settings.outbox_dir
    letters: LetterPrinter = (
        PdfLetters(out, workers=settings.letters_workers)
        if settings.letters == "pdf"
        else LocalLetters(out)
    )
    return Adapters(mailbox=LocalMailbox(out), email=LocalEmail(out), letters=letters)
