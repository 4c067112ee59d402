"""Contact data encrypted at rest: a column type that encrypts on write, decrypts on read.

Keys are Fernet keys (AES-128-CBC + HMAC-SHA256), newest first, from RELANCE_DATA_KEYS
(comma-separated); when unset, one key is generated and kept (0600) in data_dir/data_keys,
like the console's secret key. The first key encrypts, every key decrypts: rotating means
prepending a new key, re-encrypting (`relance keys rotate`), then dropping the old key
(docs/security.md).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from campaigns.settings import get_settings

KEYS_FILE = "data_keys"
KEYS_SETTING = "RELANCE_DATA_KEYS"


class DecryptionError(RuntimeError):
    """A stored value no configured key can decrypt (the message never holds the value)."""


class KeyConfigError(ValueError):
    """The configured data keys are missing or malformed."""


def new_key() -> str:
    """A fresh Fernet key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode()


def parse_keys(raw: str) -> list[str]:
    """Comma-separated keys, newest first; blanks ignored."""
    return [k.strip() for k in raw.split(",") if k.strip()]


def make_keyring(keys: list[str]) -> MultiFernet:
    """The keyring for keys listed newest first (the first one encrypts)."""
    if not keys:
        raise KeyConfigError(f"no data key configured: set {KEYS_SETTING}")
    fernets = []
    for i, k in enumerate(keys, 1):
        try:
            fernets.append(Fernet(k))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise KeyConfigError(
                f"data key #{i} of {KEYS_SETTING} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; `relance keys new` prints one)"
            ) from None
    return MultiFernet(fernets)


def _generated_keys(data_dir: Path) -> list[str]:
    """The keys kept in data_dir/data_keys, created (0600, atomically) on first use."""
    path = data_dir / KEYS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{KEYS_FILE}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key() + "\n")
        try:
            os.link(tmp, path)  # atomic and exclusive: a concurrent process's key wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return parse_keys(path.read_text())


def configured_keys(settings: Any | None = None) -> list[str]:
    """The data keys of the settings: RELANCE_DATA_KEYS, else the generated key file."""
    if settings is None:
        settings = get_settings()
    if settings.data_keys:
        return parse_keys(settings.data_keys)
    return _generated_keys(Path(settings.data_dir))


_lock = threading.Lock()
_override: MultiFernet | None = None
_cached: tuple[Any, MultiFernet] | None = None  # (the settings object it came from, keyring)


def set_keys(keys: list[str]) -> None:
    """Use these keys (newest first) in this process, whatever the settings say."""
    global _override
    _override = make_keyring(keys)


def reset() -> None:
    """Forget explicit and cached keys: the next use reads the settings again."""
    global _override, _cached
    with _lock:
        _override = None
        _cached = None


def keyring() -> MultiFernet:
    """This process's keyring: set_keys(), else resolved once per settings object."""
    global _cached
    if _override is not None:
        return _override
    settings = get_settings()
    cached = _cached
    if cached is not None and cached[0] is settings:
        return cached[1]
    with _lock:
        ring = make_keyring(configured_keys(settings))
        _cached = (settings, ring)
    return ring


def encrypt(value: str) -> str:
    """The token of a value, with the newest key."""
    return keyring().encrypt(value.encode()).decode("ascii")


def decrypt(token: str, *, column: str = "a column") -> str:
    """The clear value of a token; DecryptionError (naming the column only) if no key fits."""
    try:
        return keyring().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise DecryptionError(
            f"cannot decrypt {column}: no configured data key matches the stored value; "
            f"check {KEYS_SETTING} (keys newest first, old ones kept until "
            "`relance keys rotate` has run) or the data_dir/data_keys file"
        ) from None


def rotate(token: str) -> str:
    """The token re-encrypted with the newest key (any configured key may have written it)."""
    try:
        return keyring().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError):
        raise DecryptionError(
            f"cannot re-encrypt a value: no configured data key matches it; check {KEYS_SETTING}"
        ) from None


class Encrypted(TypeDecorator[str]):
    """A text column stored encrypted: clear in Python, a Fernet token in the database.

    Tokens are randomised, so the column can be read and written but not searched, compared
    or indexed in SQL; only IS NULL tells something, so `empty_as_null` stores "" as NULL
    (whether a person has a phone can then be asked without decrypting anyone's number).
    """

    impl = Text
    cache_ok = True

    def __init__(self, column: str = "an encrypted column", empty_as_null: bool = False) -> None:
        super().__init__()
        self.column, self.empty_as_null = column, empty_as_null

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or (self.empty_as_null and value == ""):
            return None
        return encrypt(str(value))

    def process_result_value(self, value: Any | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return decrypt(value, column=self.column)


ENCRYPTED_COLUMNS = {"person": ("nir", "telephone", "email")}


def rotate_all(engine: Any, *, batch: int = 1000, progress: Any = None) -> dict[str, int]:
    """Re-encrypt every stored value with the newest key, one transaction per batch of rows.

    Values written by any configured key are accepted; afterwards the older keys can be
    dropped. `progress(counts)` is called after each batch. Returns the counts per table
    (`<table>.rows`) and the values re-encrypted (`values`).
    """
    from sqlalchemy import text

    counts: dict[str, int] = {"values": 0}
    lock = " FOR UPDATE" if engine.dialect.name == "postgresql" else ""
    for table, columns in ENCRYPTED_COLUMNS.items():
        cols = ", ".join(columns)
        read = text(f"SELECT id, {cols} FROM {table} WHERE id > :last ORDER BY id LIMIT :n{lock}")
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        write = text(f"UPDATE {table} SET {sets} WHERE id = :id")
        counts[f"{table}.rows"] = 0
        last = 0
        while True:
            with engine.begin() as conn:
                rows = conn.execute(read, {"last": last, "n": batch}).all()
                if not rows:
                    break
                params = []
                for r in rows:
                    values: dict[str, Any] = {"id": r.id}
                    for c in columns:
                        v = getattr(r, c)
                        if v is not None:
                            v = rotate(v)
                            counts["values"] += 1
                        values[c] = v
                    params.append(values)
                conn.execute(write, params)
            counts[f"{table}.rows"] += len(rows)
            last = rows[-1].id
            if progress is not None:
                progress(dict(counts))
    return counts
