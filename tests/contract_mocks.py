"""Prism contract mocks on loopback, started and stopped by the test fixtures."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PRISM = ROOT / "tools" / "prism" / "node_modules" / ".bin" / "prism"
# The providers' official OpenAPI files (MIT, see LICENSE.* beside them), kept in the repository.
CONTRACTS = Path(os.environ.get("RELANCE_CONTRACTS_DIR", ROOT / "tests" / "contracts"))
TWILIO_SPEC = CONTRACTS / "twilio_api_v2010.json"
SENDGRID_SPEC = CONTRACTS / "sendgrid_mail_v3.json"
MAILBOX_SPEC = ROOT / "docs" / "api" / "mailbox.openapi.yaml"


class MockUnavailable(RuntimeError):
    """Prism or a contract file is missing (scripts/setup.sh --tests installs Prism)."""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prism(spec: Path, *, log: Path | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Serve `spec` with `prism mock` on a free loopback port; yields its base URL."""
    if not PRISM.exists():
        raise MockUnavailable(f"{PRISM} is missing: run scripts/setup.sh --tests")
    if not spec.exists():
        raise MockUnavailable(f"contract file {spec} is missing")
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise MockUnavailable(f"prism exited with {proc.returncode} serving {spec.name}")
            try:
                httpx.get(url + "/", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise MockUnavailable(f"prism did not listen on {url} in {timeout} s") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()  # type: ignore[union-attr]
