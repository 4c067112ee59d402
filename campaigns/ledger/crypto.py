"""Contact data encrypted at rest: a column type that encrypts on write, decrypts on read.

Keys are Fernet-format keys (32 random bytes, url-safe base64), newest first, from
RELANCE_DATA_KEYS (comma-separated); when unset, one key is generated and kept (0600) in
data_dir/data_keys, like the console's secret key. Values are written as `g1:` tokens,
AES-256-GCM under a key derived from the data key (HKDF-SHA256): ~4× cheaper than Fernet
(AES-128-CBC + HMAC-SHA256), which a 2.5 M-member wave pays millions of times. Fernet tokens
written before are still read. The first key encrypts, every key decrypts: rotating means
prepending a new key, re-encrypting (`relance keys rotate`), then dropping the old key
(docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from campaigns.settings import get_settings

KEYS_FILE = "data_keys"
KEYS_SETTING = "RELANCE_DATA_KEYS"
GCM_PREFIX = "g1:"
_GCM_INFO = b"relance contact data g1 aes-256-gcm"
# Bound to every g1 token: a token of another format or purpose never decrypts as one.
_GCM_AAD = b"relance/g1"
_KEY_ID, _NONCE = 4, 12


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


@dataclass(frozen=True)
class Keyring:
    """The configured keys: GCM keys by id (the first one encrypts), and Fernet for old tokens."""

    gcm: tuple[tuple[bytes, AESGCM], ...]
    fernet: MultiFernet

    def gcm_by_id(self, key_id: bytes) -> AESGCM | None:
        """The GCM key with this id, if configured."""
        for kid, aead in self.gcm:
            if kid == key_id:
                return aead
        return None


def _gcm_key(raw: bytes) -> tuple[bytes, AESGCM]:
    """The AES-256-GCM key derived from a data key's 32 bytes, and its 4-byte id."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_GCM_INFO).derive(raw)
    return hashlib.sha256(b"relance-key-id|" + derived).digest()[:_KEY_ID], AESGCM(derived)


def make_keyring(keys: list[str]) -> Keyring:
    """The keyring for keys listed newest first (the first one encrypts)."""
    if not keys:
        raise KeyConfigError(f"aucune clé de chiffrement configurée : renseigner {KEYS_SETTING}")
    fernets, gcm = [], []
    for i, k in enumerate(keys, 1):
        try:
            fernets.append(Fernet(k))
            raw = base64.urlsafe_b64decode(k.encode())
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise KeyConfigError(
                f"la clé n° {i} de {KEYS_SETTING} n'est pas une clé valide "
                "(32 octets en base64 url-safe ; `relance keys new` en produit une)"
            ) from None
        gcm.append(_gcm_key(raw))
    return Keyring(gcm=tuple(gcm), fernet=MultiFernet(fernets))


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
_override: Keyring | None = None
_cached: tuple[Any, Keyring] | None = None  # (the settings object it came from, keyring)


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


def keyring() -> Keyring:
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


def _encrypt_with(ring: Keyring, value: str) -> str:
    key_id, aead = ring.gcm[0]
    nonce = os.urandom(_NONCE)
    sealed = aead.encrypt(nonce, value.encode(), _GCM_AAD)
    return GCM_PREFIX + base64.urlsafe_b64encode(key_id + nonce + sealed).decode("ascii")


def _decrypt_with(ring: Keyring, token: str) -> str:
    """The clear value; InvalidToken when no configured key opens it."""
    if not token.startswith(GCM_PREFIX):
        return ring.fernet.decrypt(token.encode("ascii")).decode()
    try:
        blob = base64.urlsafe_b64decode(token[len(GCM_PREFIX) :].encode("ascii"))
    except ValueError:
        raise InvalidToken from None
    aead = ring.gcm_by_id(blob[:_KEY_ID])
    if aead is None or len(blob) < _KEY_ID + _NONCE + 16:
        raise InvalidToken
    nonce, sealed = blob[_KEY_ID : _KEY_ID + _NONCE], blob[_KEY_ID + _NONCE :]
    try:
        return aead.decrypt(nonce, sealed, _GCM_AAD).decode()
    except InvalidTag:
        raise InvalidToken from None


def encrypt(value: str) -> str:
    """The token of a value, with the newest key."""
    return _encrypt_with(keyring(), value)


def encrypt_many(values: Iterable[str]) -> list[str]:
    """The tokens of many values, with the newest key (the keyring looked up once)."""
    ring = keyring()
    return [_encrypt_with(ring, value) for value in values]


def decrypt(token: str, *, column: str = "une colonne") -> str:
    """The clear value of a token; DecryptionError (naming the column only) if no key fits."""
    try:
        return _decrypt_with(keyring(), token)
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            f"impossible de déchiffrer {column} : aucune clé configurée n'ouvre la valeur "
            f"enregistrée ; vérifier {KEYS_SETTING} (clés de la plus récente à la plus "
            "ancienne, les anciennes gardées jusqu'à `relance keys rotate`) ou le fichier "
            "data_dir/data_keys"
        ) from None


def rotate(token: str) -> str:
    """The token re-encrypted with the newest key (any configured key may have written it,
    as a g1 or a Fernet token)."""
    ring = keyring()
    try:
        return _encrypt_with(ring, _decrypt_with(ring, token))
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            "impossible de rechiffrer une valeur : aucune clé configurée ne l'ouvre ; "
            f"vérifier {KEYS_SETTING}"
        ) from None


class Encrypted(TypeDecorator[str]):
    """A text column stored encrypted: clear in Python, a g1 (or older Fernet) token in the
    database.

    Tokens are randomised, so the column can be read and written but not searched, compared
    or indexed in SQL; only IS NULL tells something, so `empty_as_null` stores "" as NULL
    (whether a person has a phone can then be asked without decrypting anyone's number).
    """

    impl = Text
    cache_ok = True

    def __init__(self, column: str = "une colonne chiffrée", empty_as_null: bool = False) -> None:
        super().__init__()
        self.column, self.empty_as_null = column, empty_as_null

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if self._stored_as_null(value):
            return None
        return encrypt(str(value))

    def bind_many(self, values: Sequence[Any]) -> list[str | None]:
        """What `process_bind_param` gives for each value, for bulk writes that bypass it."""
        clear = [i for i, v in enumerate(values) if not self._stored_as_null(v)]
        tokens = encrypt_many(str(values[i]) for i in clear)
        out: list[str | None] = [None] * len(values)
        for i, token in zip(clear, tokens, strict=True):
            out[i] = token
        return out

    def _stored_as_null(self, value: Any) -> bool:
        return value is None or (self.empty_as_null and value == "")

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
