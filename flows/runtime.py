"""What every flow needs before its first stage: its database, its day, and when to retry."""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from typing import Any

from campaigns.clock import paris_today
from campaigns.settings import get_settings
from channels.base import TemporaryFailure

# The Prefect Secret block a deployment may carry the ledger's URL in (instead of the env).
DATABASE_SECRET = "relance-database-url"


class ConfigurationError(RuntimeError):
    """A flow cannot run as configured: retrying would not help."""


def configure_database() -> str:
    """The ledger's URL from the environment or the Secret block; refuse to guess one.

    A worker started without RELANCE_DATABASE_URL would otherwise run against a new, empty
    SQLite file and report success: outside `relance demo`, the database is always named.
    """
    settings = get_settings()
    if settings.database_url or os.environ.get("DATABASE_URL"):
        return settings.resolved_database_url()
    url = _secret_url()
    if url:
        os.environ["RELANCE_DATABASE_URL"] = url
        get_settings.cache_clear()
        return get_settings().resolved_database_url()
    raise ConfigurationError(
        "aucune base de données configurée pour ce flow : définissez RELANCE_DATABASE_URL "
        f"dans l'environnement du worker ou créez le bloc Secret Prefect « {DATABASE_SECRET} » "
        "(docs/operations.md)"
    )


def _secret_url() -> str | None:
    from prefect.blocks.system import Secret

    try:
        block: Any = Secret.load(DATABASE_SECRET)
        value = block.get()
    except ValueError:  # no such block
        return None
    return str(value) if value else None


def run_day(day: date | None) -> date:
    """The day a run processes: the one given, else its scheduled start in Europe/Paris.

    A late run (a worker down at 06:30, back at 10:00) still processes the day it was
    scheduled for, not the day the clock shows when it starts.
    """
    if day is not None:
        return day
    from prefect.runtime import flow_run

    scheduled: Any = flow_run.scheduled_start_time
    start = scheduled if isinstance(scheduled, datetime) else datetime.fromisoformat(str(scheduled))
    return paris_today(start)


# Errors a later attempt can get past: the network, a restarting database, a busy provider.
_TRANSIENT_DB = re.compile(
    r"could not connect|connection refused|server closed the connection|terminating connection"
    r"|connection (?:is )?closed|timeout|timed out|database is locked|ssl syscall|broken pipe",
    re.IGNORECASE,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a retry could succeed: only I/O trouble, never configuration or input."""
    import httpx
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, ConfigurationError):
        return False
    if isinstance(exc, TemporaryFailure | httpx.TransportError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc, OperationalError) and bool(_TRANSIENT_DB.search(str(exc.orig)))
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry I/O failures, fail configuration and input at once."""
    try:
        state.result()
    except BaseException as exc:  # the task's own exception, re-raised by result()
        return is_transient(exc)
    return False
