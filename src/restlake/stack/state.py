"""The stack's on-disk state: folder layout, the JSON state file and loopback port picking.

The state file is what makes restarts cheap and predictable: ports are chosen once, at the
first ``up``, and every later start (``up`` after ``down``, ``start_service`` after a
fault test killed a broker) reuses them, so clients holding the old endpoints reconnect.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from restlake.errors import StackError

log = logging.getLogger(__name__)

STATE_FILE_NAME = "stack.json"
STATE_VERSION = 1
LOOPBACK = "127.0.0.1"
JARS_DIR_ENV = "RESTLAKE_JARS_DIR"
# Above the well-known and common dev ports (8080, 9092, 5432...), below the ephemeral range.
_SERVICE_PORT_LOW = 20000


@dataclass(frozen=True)
class StackPaths:
    """Where each service keeps its data, logs and pid file under one state folder."""

    root: Path
    jars: Path

    @classmethod
    def under(cls, state_dir: Path, *, jars_dir: Path | None = None) -> StackPaths:
        root = state_dir.absolute()
        return cls(root=root, jars=(jars_dir or root / "jars").absolute())

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE_NAME

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"


def jars_dir_for(state_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """The jar cache: ``RESTLAKE_JARS_DIR`` when set, else ``<state>/jars``."""
    env = os.environ if env is None else env
    override = env.get(JARS_DIR_ENV)
    return Path(override).absolute() if override else (state_dir / "jars").absolute()


@dataclass
class KafkaState:
    port: int
    controller_port: int
    # KRaft writes the cluster id into meta.properties at format time; it must stay the same
    # for the life of the data folder, so it is recorded next to the ports.
    cluster_id: str


@dataclass
class PostgresState:
    port: int | None
    # Set when RESTLAKE_PG_DSN named a server at `up`: the stack then starts no Postgres.
    external_dsn: str | None = None


@dataclass
class StackState:
    """Everything a later CLI call needs to find, reuse or restart the services."""

    kafka: KafkaState
    postgres: PostgresState
    lake_root: str
    up: bool = False
    version: int = field(default=STATE_VERSION)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<string>") -> StackState:
        try:
            raw: Any = json.loads(text)
            if not isinstance(raw, dict):
                raise TypeError(f"top level is {type(raw).__name__}, expected an object")
            version = raw.get("version")
            if version != STATE_VERSION:
                raise ValueError(f"version is {version!r}, this restlake reads version {STATE_VERSION}")
            kafka = raw["kafka"]
            postgres = raw["postgres"]
            return cls(
                kafka=KafkaState(
                    port=_port(kafka["port"], "kafka.port"),
                    controller_port=_port(kafka["controller_port"], "kafka.controller_port"),
                    cluster_id=str(kafka["cluster_id"]),
                ),
                postgres=PostgresState(
                    port=None if postgres.get("port") is None else _port(postgres["port"], "postgres.port"),
                    external_dsn=postgres.get("external_dsn"),
                ),
                lake_root=str(raw["lake_root"]),
                up=bool(raw.get("up", False)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise StackError(
                f"cannot read the stack state file {source}: {detail}. "
                "Stop whatever it started (`restlake stack down`) or delete the file to start afresh."
            ) from exc


def _port(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{name} is {value!r}, expected a TCP port number")
    return value


def load_state(path: Path) -> StackState | None:
    """The recorded state, or None when no stack was ever started under this folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return StackState.from_json(text, source=str(path))


def save_state(path: Path, state: StackState) -> None:
    """Write atomically: a crash mid-write must not leave a file that hides the ports in use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(state.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_free_ports(
    count: int,
    host: str = LOOPBACK,
    *,
    avoid: frozenset[int] = frozenset(),
    rng: random.Random | None = None,
) -> list[int]:
    """Distinct ports that are free on ``host`` right now, outside the ephemeral range.

    Not port 0: the kernel answers with an ephemeral port, and a service restarted on one can
    find it taken by a client's outgoing connection, even by a client still retrying that very
    port (a TCP self-connect holds it). Below the ephemeral range no outgoing socket lands.
    All sockets stay bound until every port is picked, so no port is handed out twice.
    """
    rng = rng or random.Random()
    ephemeral_low, _ = ephemeral_port_range()
    low, high = _SERVICE_PORT_LOW, max(_SERVICE_PORT_LOW + 1000, ephemeral_low) - 1
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _attempt in range(2000):
            if len(ports) == count:
                return ports
            port = rng.randint(low, high)
            if port in avoid or port in ports:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    if len(ports) == count:
        return ports
    raise StackError(f"found only {len(ports)} of {count} free ports in {low}-{high} on {host}")


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR matches what the JVM and postgres set, so a port in TIME_WAIT after a
        # restart counts as free, as it is for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float, host: str = LOOPBACK) -> bool:
    """Wait for a port a just-stopped service held to be released; True once it is free."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def port_is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def new_cluster_id() -> str:
    """A KRaft cluster id, in the same form as ``kafka-storage random-uuid`` (22 base64url chars).

    Never starting with ``-`` (Kafka's own generator skips those too): the storage tool's argument
    parser reads ``--cluster-id -Xy…`` as a missing value and an unknown option, one start in 64.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def new_state(paths: StackPaths, *, external_pg_dsn: str | None) -> StackState:
    need = 2 if external_pg_dsn else 3
    ports = pick_free_ports(need)
    return StackState(
        kafka=KafkaState(port=ports[0], controller_port=ports[1], cluster_id=new_cluster_id()),
        postgres=PostgresState(port=None if external_pg_dsn else ports[2], external_dsn=external_pg_dsn),
        lake_root=str(paths.lake),
    )
