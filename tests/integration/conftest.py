"""Session fixtures for integration tests: one real local stack (Kafka KRaft + Postgres) per session.

The stack lives in a per-session temp folder, so tests never touch a developer's running
stack, but shares the project's jar cache (``.restlake/jars`` or ``RESTLAKE_JARS_DIR``) so a
test session never downloads jars again.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from restlake.jobs.spark.session import build_spark
from restlake.stack.jars import spark_jars as resolve_spark_jars
from restlake.stack.manager import PG_DSN_ENV, LocalStack, StackEndpoints
from restlake.stack.state import jars_dir_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def project_jars_dir() -> Path:
    state_dir = Path(os.environ.get("RESTLAKE_STATE_DIR") or REPO_ROOT / ".restlake")
    return jars_dir_for(state_dir)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A started ``LocalStack`` (for fault tests that stop and restart services); stopped at session end."""
    # Hermetic: a RESTLAKE_PG_DSN exported from a developer's own stack must not make the
    # test stack use that database.
    env = {k: v for k, v in os.environ.items() if k != PG_DSN_ENV}
    stack = LocalStack(tmp_path_factory.mktemp("stack"), jars_dir=project_jars_dir(), env=env)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack(local_stack: LocalStack) -> StackEndpoints:
    """Endpoints of the session's stack: Kafka bootstrap, Postgres DSN (TCP), lake root."""
    endpoints = local_stack.endpoints()
    assert endpoints is not None
    return endpoints


@pytest.fixture(scope="session")
def spark_jars() -> list[Path]:
    """The Kafka connector, Delta and JDBC jars from the project's cache (``make jars``)."""
    return resolve_spark_jars(jars_dir=project_jars_dir())


@pytest.fixture(scope="session")
def spark(spark_jars: list[Path]) -> Iterator[SparkSession]:
    """One SparkSession for the whole test session: starting one costs 10-20 s on 2 cores."""
    session = build_spark("restlake-it", jars=spark_jars)
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def pushgateway_bin() -> str:
    """Debian's prometheus-pushgateway from PATH, installed when missing and root."""
    found = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "prometheus-pushgateway not on PATH, and installing Debian's package needs root and apt-get"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus-pushgateway"]
    if subprocess.run(install, env=env, capture_output=True, check=False, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"apt-get install prometheus-pushgateway failed:\n{result.stderr[-2000:]}")
    found = shutil.which("prometheus-pushgateway")
    assert found, "Debian's prometheus-pushgateway package installed no binary on PATH"
    return found


@pytest.fixture
def pushgateway(pushgateway_bin: str, tmp_path: Path) -> Iterator[str]:
    """A Pushgateway on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    log = (tmp_path / "pushgateway.log").open("wb")
    process = subprocess.Popen(
        [pushgateway_bin, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "pushgateway.log").read_text(errors="replace")[-2000:]
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Pushgateway did not become ready within 30 s"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
