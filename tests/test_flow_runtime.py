"""Which failures a flow retries: only what a later attempt can get past."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from channels.base import PermanentFailure, TemporaryFailure
from flows.runtime import ConfigurationError, is_transient
from targeting.extract import ExtractError


def _op(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ConfigurationError("aucune base"), False),
        (FileNotFoundError("var/extract"), False),
        (ExtractError("ir_ben_r.csv", "date illisible", row=3, column="ben_nai_ann"), False),
        (KeyError("sophia"), False),
        (ValueError("bad"), False),
        (PermanentFailure("refused"), False),
        (_op('database "relance" does not exist'), False),
        (_op("password authentication failed for user"), False),
        (ProgrammingError("SELECT", {}, Exception("relation does not exist")), False),
        (TemporaryFailure("503"), True),
        (httpx.ConnectError("refused"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (_op("connection refused"), True),
        (_op("server closed the connection unexpectedly"), True),
        (_op("database is locked"), True),
    ],
)
def test_retry_only_what_can_recover(exc: BaseException, retried: bool) -> None:
    assert is_transient(exc) is retried
