"""What every channel port shares: a receipt for a send, and the two ways a send fails."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from relance_fs import private_dir


@dataclass(frozen=True)
class Receipt:
    """A provider accepted one message: its id there and the state it is in."""

    key: str
    provider_id: str
    status: str = "sent"
    detail: str = ""


class ChannelError(Exception):
    """A send that did not happen; `retryable` says whether trying again later may work."""

    retryable = False

    def __init__(self, message: str, *, key: str | None = None, code: str = "failed") -> None:
        super().__init__(message)
        self.key, self.code = key, code


class TemporaryFailure(ChannelError):
    """Rate limited, provider down, timeout: try again later with the same key."""

    retryable = True

    def __init__(self, message: str, *, key: str | None = None, code: str = "temporary") -> None:
        super().__init__(message, key=key, code=code)


class PermanentFailure(ChannelError):
    """Invalid recipient, rejected content: trying again cannot work."""

    retryable = False

    def __init__(self, message: str, *, key: str | None = None, code: str = "permanent") -> None:
        super().__init__(message, key=key, code=code)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(key: str) -> str:
    """A file name for an idempotency key (keys hold ':' and '/')."""
    return _UNSAFE.sub("_", key)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing (0600, in folders 0700): a temporary file renamed over it."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
