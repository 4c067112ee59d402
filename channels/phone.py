"""The phone port: bridge an adviser's line to the person they call, one call per key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from channels.base import ChannelError, PermanentFailure, Receipt, safe_name, write_atomic

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class BridgeCall:
    """One agent-bridged call: ring the adviser, then dial the callee from the platform number.

    `callback_query` is appended to the status callback URL so callbacks map back to `key`.
    """

    key: str
    adviser_line: str
    callee: str
    callback_query: str = ""


class PhoneBridge(Protocol):
    """A telephony provider."""

    def bridge(self, call: BridgeCall) -> Receipt:
        """Place the call; `Receipt.provider_id` is the provider's call id."""
        ...


def mask(number: str) -> str:
    """+336•••••78: enough to tell two numbers apart in a file, not to dial."""
    return number[:4] + "•" * max(0, len(number) - 6) + number[-2:] if number else ""


def check_callee(call: BridgeCall) -> None:
    """Refuse a callee number that is not E.164 (never naming it)."""
    if not E164.match(call.callee or ""):
        raise PermanentFailure(
            "the person's number is not a valid E.164 number", key=call.key, code="invalid_number"
        )


def _check(call: BridgeCall) -> None:
    check_callee(call)
    if not E164.match(call.adviser_line or ""):
        raise PermanentFailure(
            "the adviser's line is not a valid E.164 number", key=call.key, code="invalid_number"
        )


class LocalPhone:
    """The embedded sink: one JSON file per call under `<folder>/phone/`, numbers masked."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "phone"

    def bridge(self, call: BridgeCall) -> Receipt:
        """Record the call once (same key, same receipt)."""
        _check(call)
        name = safe_name(call.key)
        path = self.folder / f"{name}.json"
        if not path.exists():
            doc = {
                "key": call.key,
                "adviser_line": mask(call.adviser_line),
                "callee": mask(call.callee),
                "callback_query": call.callback_query,
            }
            write_atomic(path, json.dumps(doc, ensure_ascii=False).encode())
        return Receipt(key=call.key, provider_id=f"local-{name}", status="queued")


@dataclass
class FakePhone:
    """An in-memory bridge for tests: records calls, fails the keys it is told to."""

    placed: dict[str, BridgeCall] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail: dict[str, ChannelError] = field(default_factory=dict)

    def bridge(self, call: BridgeCall) -> Receipt:
        """Place each key once unless told to fail."""
        self.calls.append(call.key)
        err = self.fail.pop(call.key, None)
        if err:
            raise err
        _check(call)
        self.placed.setdefault(call.key, call)
        return Receipt(key=call.key, provider_id=f"CAfake{safe_name(call.key)}", status="queued")
