"""Session fixtures for integration tests: one real local stack (Kafka KRaft + Postgres) per session.

The stack lives in a per-session temporary folder, so tests never touch a developer's running
stack, but shares the project's jar cache (``.restlake/jars`` or ``RESTLAKE_JARS_DIR``) so a
test session never downloads jars again.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from restlake.jobs.spark.session import build_spark
from restlake.postgres import migrations
from restlake.stack.jars import spark_jars as resolve_spark_jars
from restlake.stack.manager import PG_DSN_ENV, LocalStack, StackEndpoints
from restlake.stack.state import jars_dir_for

from .debian_services import debian_tools, start_until_ready

REPO_ROOT = Path(__file__).resolve().parents[2]


def project_jars_dir() -> Path:
    state_dir = Path(os.environ.get("RESTLAKE_STATE_DIR") or REPO_ROOT / ".restlake")
    return jars_dir_for(state_dir)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """A started ``LocalStack`` (for fault tests that stop and restart services); stopped at session end."""
    # Hermetic: a RESTLAKE_PG_DSN exported from a developer's own stack must not make the
    # test stack use that database.
    env = {k: v for k, v in os.environ.items() if k != PG_DSN_ENV}
    # Not under pytest's own temporary root: run as root, Postgres runs as its own user and needs
    # to traverse every folder above its data, and each pytest session that starts (`make e2e`
    # beside `make test`) takes that root back to mode 0700; the running server then lost its data
    # folder ("could not stat data directory: Permission denied") and every test after it failed.
    home = Path(tempfile.mkdtemp(prefix="restlake-it-stack-"))
    stack = LocalStack(home, jars_dir=project_jars_dir(), env=env)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(local_stack: LocalStack) -> StackEndpoints:
    """Endpoints of the session's stack: Kafka bootstrap, Postgres DSN (TCP), lake root."""
    endpoints = local_stack.endpoints()
    assert endpoints is not None
    return endpoints


@pytest.fixture(scope="session")
def dsn(stack: StackEndpoints) -> str:
    """The stack's Postgres DSN, with restlake's raw.* migrations applied."""
    migrations.apply(stack.pg_dsn)
    return stack.pg_dsn


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
    (found,) = debian_tools("prometheus-pushgateway", "prometheus-pushgateway")
    return found


@pytest.fixture
def pushgateway(pushgateway_bin: str, tmp_path: Path) -> Iterator[str]:
    """A Pushgateway on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    process = start_until_ready(
        [pushgateway_bin, f"--web.listen-address=127.0.0.1:{port}"], tmp_path / "pushgateway.log", base, 30
    )
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
