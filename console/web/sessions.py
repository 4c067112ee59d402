"""Server-side console sessions, as an ASGI middleware: the cookie carries only a signed id.

Each request reads the session row its cookie names (`campaigns.ledger.sessions`) and exposes
its data as `request.session`; `deps.db` writes changed data back in the request's own
transaction. A browser without a session gets an anonymous id (no row) that the login form's
CSRF token is bound to; login gives a fresh id (no fixation), logout ends the row.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import anyio.to_thread
from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigns.ledger.models import ConsoleSession
from campaigns.ledger.sessions import load, new_id

COOKIE = "relance_session"
SID, ROW, LOADED = "relance_sid", "relance_session_row", "relance_session_loaded"


class ServerSessions:
    """Reads the signed session id, loads its row, sets the cookie when the id changes."""

    def __init__(self, app: ASGIApp, *, secret_key: str, hours: int, secure: bool) -> None:
        self.app, self.hours, self.secure = app, hours, secure
        self.signer = TimestampSigner(secret_key, salt="relance.console.session")

    def _incoming(self, scope: Scope) -> str | None:
        raw = next((v for k, v in scope["headers"] if k == b"cookie"), None)
        if raw is None:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw.decode("latin-1"))
        except Exception:  # a malformed cookie header is no session
            return None
        morsel = jar.get(COOKIE)
        if morsel is None:
            return None
        try:
            return self.signer.unsign(morsel.value, max_age=self.hours * 3600).decode()
        except BadSignature:
            return None

    def _cookie(self, sid: str) -> str:
        value = self.signer.sign(sid).decode()
        flags = f"; Max-Age={self.hours * 3600}; Path=/; HttpOnly; SameSite=Strict"
        return f"{COOKIE}={value}{flags}{'; Secure' if self.secure else ''}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = self._incoming(scope)
        row: ConsoleSession | None = None
        if incoming is not None:
            engine: Engine = scope["app"].state.engine
            row = await anyio.to_thread.run_sync(_load, engine, incoming)
        data: dict[str, Any] = dict(row.data) if row is not None and row.ended_at is None else {}
        scope[SID] = incoming or new_id()
        scope[ROW] = row
        scope[LOADED] = dict(data)
        scope["session"] = data

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and scope[SID] != incoming:
                MutableHeaders(scope=message).append("set-cookie", self._cookie(scope[SID]))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _load(engine: Engine, sid: str) -> ConsoleSession | None:
    with Session(engine) as s:
        return load(session=s, sid=sid)
