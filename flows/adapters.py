"""Channel providers chosen by settings: local sinks by default, real providers by name."""

from __future__ import annotations

from typing import Any

from campaigns.cascade.dispatch import Adapters
from campaigns.settings import Settings
from channels.email import EmailSender, LocalEmail
from channels.letters import LetterPrinter, LocalLetters
from channels.mailbox import LocalMailbox, MailboxGateway
from channels.mailbox_http import HttpMailbox
from channels.pdf_letters import PdfLetters
from channels.phone import LocalPhone
from channels.print_files import PrintFileLetters

CHOICES = {
    "mailbox": ("local", "http"),
    "email": ("local", "sendgrid"),
    "letters": ("local", "pdf", "files"),
    "phone": ("local", "twilio"),
}


def _require(settings: Settings, *names: str) -> None:
    missing = [f"RELANCE_{n.upper()}" for n in names if not getattr(settings, n)]
    if missing:
        raise ValueError(f"missing settings for the chosen provider: {', '.join(missing)}")


def check_choices(settings: Settings) -> None:
    """Refuse an unknown provider name, naming the setting and what it may be."""
    bad = [
        f"RELANCE_{k.upper()}={getattr(settings, k)!r} (one of {', '.join(v)})"
        for k, v in CHOICES.items()
        if getattr(settings, k) not in v
    ]
    if bad:
        raise ValueError("no such channel provider: " + "; ".join(bad))


def build_adapters(settings: Settings) -> Adapters:
    """The dispatched channels' adapters that the settings name."""
    check_choices(settings)
    out = settings.outbox_dir
    mailbox: MailboxGateway
    if settings.mailbox == "http":
        _require(settings, "mailbox_url", "mailbox_token")
        mailbox = HttpMailbox(
            base_url=str(settings.mailbox_url),
            token=str(settings.mailbox_token),
            per_second=settings.mailbox_requests_per_second,
        )
    else:
        mailbox = LocalMailbox(out)
    email: EmailSender
    if settings.email == "sendgrid":
        # The SendGrid SDK loads only where SendGrid is configured.
        from channels.sendgrid_email import SendGridEmail

        _require(settings, "sendgrid_api_key")
        email = SendGridEmail(
            api_key=str(settings.sendgrid_api_key),
            host=settings.sendgrid_host,
            sender=settings.sendgrid_from,
            per_second=settings.sendgrid_requests_per_second,
        )
    else:
        email = LocalEmail(out)
    letters: LetterPrinter
    if settings.letters == "files":
        letters = PrintFileLetters(
            out,
            samples=settings.letters_samples,
            pdf=PdfLetters(out, workers=settings.letters_workers),
            pdf_below=settings.letters_pdf_below,
        )
    elif settings.letters == "pdf":
        letters = PdfLetters(out, workers=settings.letters_workers)
    else:
        letters = LocalLetters(out)
    return Adapters(
        mailbox=mailbox,
        email=email,
        letters=letters,
        mailbox_batch=settings.mailbox_batch_size,
        mailbox_in_flight=settings.mailbox_requests_in_flight,
    )


def batch_size_for(settings: Settings, channel: str) -> int:
    """Actions claimed per dispatch batch: a print-house data file holds a mass batch."""
    if channel == "letter" and settings.letters == "files":
        return settings.letters_batch_size
    return settings.dispatch_batch_size


def build_phone(settings: Settings) -> Any:
    """The telephony that bridges an adviser to the person they call."""
    check_choices(settings)
    if settings.phone == "twilio":
        # The Twilio SDK (and requests) loads only where Twilio is configured.
        from channels.twilio_phone import TwilioPhone

        _require(settings, "twilio_account_sid", "twilio_auth_token", "twilio_caller_id")
        return TwilioPhone(
            account_sid=str(settings.twilio_account_sid),
            auth_token=str(settings.twilio_auth_token),
            caller_id=str(settings.twilio_caller_id),
            status_callback=settings.public_base_url.rstrip("/") + "/webhooks/twilio/status",
            api_base=settings.twilio_api_base,
            per_second=settings.twilio_calls_per_second,
        )
    return LocalPhone(settings.outbox_dir)
