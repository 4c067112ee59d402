"""A real Prefect server and process worker on loopback, for the tests that deploy prefect.yaml."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its API URL and the environment its CLI calls need."""

    api_url: str
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> str:
        """Run `prefect ARGS` against this server; raise with its output if it fails."""
        run = subprocess.run(
            [PREFECT, "--no-prompt", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
        return run.stdout


def _base_env(home: Path, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # A worker must not find the ledger in its own environment: the deployment carries it.
    env.pop("RELANCE_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    return env


@contextmanager
def prefect_server(home: Path, startup_timeout: float = 120) -> Iterator[Server]:
    """`prefect server start` on a free loopback port (its own SQLite database), stopped after."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _base_env(home, api_url)
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home,
            env={
                **env,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(api_url=api_url, env=env, log=log)
    finally:
        _stop(proc)


@contextmanager
def process_worker(
    server: Server, pool: str, env: dict[str, str], log: Path, *args: str
) -> Iterator[None]:
    """`prefect worker start` on the pool (extra `args`, environment), stopped after."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--type", "process", *args],
            cwd=ROOT,
            env={**server.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
