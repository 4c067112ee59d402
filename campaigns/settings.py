"""Settings, from the environment (prefix RELANCE_) or a `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Relance keeps its data and which providers it talks to."""

    model_config = SettingsConfigDict(env_prefix="RELANCE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; also read from DATABASE_URL. Default: SQLite in data_dir.",
    )
    # The console: signed session cookies, their lifetime, the extract used to explain decisions.
    secret_key: str | None = None
    # Keys encrypting NIR, phone and e-mail at rest (AES-256-GCM g1 tokens): comma-separated
    # keys in the Fernet key format, newest first
    # (campaigns.ledger.crypto, docs/security.md). Unset: one key generated in data_dir/data_keys.
    data_keys: str | None = None
    # The audit log's HMAC key (docs/security.md). Unset: one key generated in data_dir/audit_key.
    audit_key: str | None = None
    # A signed checkpoint of the audit log is appended to data_dir/audit_checkpoints.jsonl after
    # the first event and every this many events (0: only by `relance audit checkpoint`).
    audit_checkpoint_every: int = 100
    session_hours: int = 8
    # Failed logins allowed per account and per client address within login_throttle_minutes
    # (a real account is also locked after 5 failures by campaigns.ledger.accounts):
    # an address gets far more than an account, so a platform of advisers behind one address
    # survives a few colleagues' typos while a spray across accounts is still slowed down.
    login_max_failures_per_account: int = 10
    login_max_failures_per_address: int = 200
    login_throttle_minutes: int = 15
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or networks);
    # from any other peer the header is ignored and the peer's own address counts.
    trusted_proxies: str = ""
    # Secure cookies: forced on by this, and on whenever public_base_url is https.
    cookie_secure: bool = False
    extract_dir: Path | None = None
    # /openapi.json documents the console's routes; off unless asked for (tests, local dev).
    openapi: bool = False
    # Channel providers: "local" sinks by default; real ones by name, configured below.
    mailbox: str = "local"  # local | http
    email: str = "local"  # local | sendgrid
    letters: str = "local"  # local | pdf | files (print-house data files, PDF for small batches)
    phone: str = "local"  # local | twilio
    # Where providers reach our callbacks (Twilio signs the full URL it calls).
    public_base_url: str = "http://localhost:8000"
    webhook_max_age_seconds: int = 600
    # Twilio: agent-bridged calls from the platform number.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base: str | None = None  # e.g. a contract mock; None means api.twilio.com
    twilio_caller_id: str | None = None
    twilio_calls_per_second: float = 1.0
    # SendGrid: v3 Mail Send for the mailbox notices, Event Webhook back.
    sendgrid_api_key: str | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_from: str = "ne-pas-repondre@assurance-maladie.fr"
    sendgrid_requests_per_second: float = 10.0
    sendgrid_webhook_public_key: str | None = None  # base64 ECDSA P-256 key from SendGrid
    # The insurer's mailbox service (docs/api/mailbox.openapi.yaml).
    mailbox_url: str | None = None
    mailbox_token: str | None = None
    mailbox_requests_per_second: float = 20.0
    mailbox_batch_size: int = 500  # messages a batch deposit (the contract allows 500)
    mailbox_requests_in_flight: int = 4  # batch deposits sent at once
    letters_workers: int = 2  # processes rendering PDF letters (one per core)
    # RELANCE_LETTERS=files: letters claimed per batch (one data file each), a batch with fewer
    # new letters than letters_pdf_below printed as PDF instead, sample PDFs per data file.
    letters_batch_size: int = 20000
    letters_pdf_below: int = 1000
    letters_samples: int = 3
    dispatch_batch_size: int = 500
    # Dispatch loops side by side per channel (one prepares while another's batch is with the
    # provider); letters keep one.
    dispatch_lanes: int = 2
    tick_batch_size: int = 2000
    # Batches a tick plans side by side on PostgreSQL (one connection each); SQLite: one.
    tick_workers: int = 2
    # Contact pressure across every campaign (campaigns.policy.decision).
    pressure_max_calls: int = 1
    pressure_calls_days: int = 14
    pressure_max_contacts: int = 3
    pressure_contacts_days: int = 30

    @property
    def outbox_dir(self) -> Path:
        """Where local channel sinks write what they 'send'."""
        return self.data_dir / "outbox"

    @property
    def feeds_dir(self) -> Path:
        """Where programme feeds (enrolment files) are dropped."""
        return self.data_dir / "feeds"

    def resolved_secret_key(self) -> str:
        """RELANCE_SECRET_KEY, else a random key kept (0600) in data_dir."""
        if self.secret_key:
            return self.secret_key
        import secrets

        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def resolved_extract_dir(self) -> Path:
        """The extract the console explains decisions from."""
        return self.extract_dir or self.data_dir / "extract"

    def resolved_database_url(self) -> str:
        """The database to use: RELANCE_DATABASE_URL, DATABASE_URL, else SQLite in data_dir."""
        import os

        url = self.database_url or os.environ.get("DATABASE_URL")
        if url:
            # Plain postgresql:// URLs go through psycopg 3, the driver we ship.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        # campaigns.ledger.db creates the file 0600 in a 0700 folder when it first connects.
        return f"sqlite:///{(self.data_dir / 'relance.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
