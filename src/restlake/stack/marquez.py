"""A local Marquez (OpenLineage backend) run from its Maven jars against the stack's Postgres.

Marquez is a Dropwizard app: ``java -cp <jars> marquez.MarquezApp server <config.yml>``. It keeps
its metadata in its own database (``marquez``), created here on the stack's Postgres, and applies
its Flyway migrations on start-up.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import yaml
from psycopg import sql

from restlake.errors import StackError

log = logging.getLogger(__name__)

MAIN_CLASS = "marquez.MarquezApp"
DATABASE = "marquez"
_START_TIMEOUT_S = 240.0  # JVM start plus Flyway's ~80 migrations on 2 busy cores


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_database(dsn: str, name: str = DATABASE) -> str:
    """Create ``name`` on the DSN's server if missing; returns a DSN pointing at it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def render_config(dsn: str, port: int, admin_port: int) -> dict[str, Any]:
    """Marquez's YAML config: loopback connectors, the database from a libpq URI."""
    parts = urlsplit(dsn)
    return {
        "server": {
            "applicationConnectors": [{"type": "http", "port": port, "bindHost": "127.0.0.1"}],
            "adminConnectors": [{"type": "http", "port": admin_port, "bindHost": "127.0.0.1"}],
        },
        "db": {
            "driverClass": "org.postgresql.Driver",
            "url": f"jdbc:postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}",
            "user": parts.username or "postgres",
            "password": parts.password or "",
        },
        "migrateOnStartup": True,
        "logging": {"level": "WARN", "appenders": [{"type": "console"}]},
    }


@dataclass(frozen=True)
class Marquez:
    url: str
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> Any:
        import json

        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.load(response)


@contextlib.contextmanager
def running(classpath: list[Path], dsn: str, workdir: Path) -> Iterator[Marquez]:
    """Start Marquez, wait until its API answers, stop it (SIGTERM, then SIGKILL) on exit."""
    port, admin_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "marquez.yml"
    config.write_text(yaml.safe_dump(render_config(ensure_database(dsn), port, admin_port)), encoding="utf-8")
    config.chmod(0o600)  # it holds the database password
    log_path = workdir / "marquez.log"
    argv = ["java", "-Xmx512m", "-cp", ":".join(map(str, classpath)), MAIN_CLASS, "server", str(config)]
    with log_path.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    marquez = Marquez(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(marquez, log_path)
        yield marquez
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(marquez: Marquez, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if marquez.process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise StackError(f"Marquez exited with {marquez.process.returncode} at start-up:\n{tail}")
        with contextlib.suppress(OSError):
            marquez.get("/api/v1/namespaces")
            return
        time.sleep(1.0)
    raise StackError(
        f"Marquez did not answer on {marquez.url} within {_START_TIMEOUT_S:.0f}s; see {log_path}"
    )
