"""The Spark backend on a standalone cluster (a master and a worker on loopback, each its own
JVM, not local mode) gives the same rows as DuckDB: the national wave's targeting path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_spark import assert_synthetic_extract_matches_duckdb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Spark {what} exited: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"the Spark {what} did not listen on {port}: {log.read_text()[-2000:]}")


def _start(cls: str, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    return subprocess.Popen(
        [str(spark_class), cls, *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and one worker on 127.0.0.1; yields the master's URL."""
    import pyspark

    logs = tmp_path_factory.mktemp("spark-logs")
    env = {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_DIR": str(logs / "work"),
        "PYSPARK_PYTHON": sys.executable,
    }
    port, worker_port = _free_port(), _free_port()
    master = _start(
        "org.apache.spark.deploy.master.Master",
        ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port())],
        logs / "master.log",
        env,
    )
    procs = [master]
    try:
        _wait_for(port, master, "master", logs / "master.log")
        url = f"spark://127.0.0.1:{port}"
        worker = _start(
            "org.apache.spark.deploy.worker.Worker",
            [
                url,
                "--host", "127.0.0.1",
                "--port", str(worker_port),
                "--webui-port", str(_free_port()),
                "--cores", "2",
                "--memory", "1g",
            ],
            logs / "worker.log",
            env,
        )  # fmt: skip
        procs.append(worker)
        _wait_for(worker_port, worker, "worker", logs / "worker.log")
        yield url
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def spark(cluster: str) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    from targeting.spark import spark_session

    active = SparkSession.getActiveSession()
    if active is not None:  # a local-mode session of another module would be reused
        active.stop()
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = spark_session(cluster)
    yield session
    session.stop()


def test_the_session_runs_on_the_standalone_cluster(spark: Any) -> None:
    sc = spark.sparkContext
    assert sc.master.startswith("spark://127.0.0.1:")
    # the work runs in the worker's executor JVM, not in the driver
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        executors = sc._jsc.sc().getExecutorMemoryStatus().size()
        if executors >= 2:  # the driver and at least one executor
            break
        time.sleep(0.5)
    assert executors >= 2
    assert spark.range(1000).selectExpr("sum(id) as s").collect()[0]["s"] == 499_500


def test_synthetic_extract_matches_duckdb_on_the_cluster(spark: Any, tmp_path: Path) -> None:
    assert_synthetic_extract_matches_duckdb(spark, tmp_path / "x", people=5_000, seed=17)
