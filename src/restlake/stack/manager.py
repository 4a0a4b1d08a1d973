"""The local stack as one object: Kafka (KRaft) and Postgres on loopback, the lake folder, the jars.

``LocalStack`` is what ``restlake stack``, ``restlake run`` and the integration tests use.
Every call reads the state file first, so separate CLI invocations (and a test that killed a
service) see the same ports and processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from restlake.errors import StackError
from restlake.stack import jars
from restlake.stack.kafka import KafkaBroker
from restlake.stack.postgres import PostgresServer, check_reachable, redact
from restlake.stack.process import ServiceStatus
from restlake.stack.service import LocalService
from restlake.stack.state import (
    StackPaths,
    StackState,
    jars_dir_for,
    load_state,
    new_state,
    pick_free_ports,
    save_state,
)

log = logging.getLogger(__name__)

__all__ = ["SERVICES", "LocalStack", "ServiceStatus", "StackEndpoints"]

SERVICES = ("kafka", "postgres")
PG_DSN_ENV = "RESTLAKE_PG_DSN"


@dataclass(frozen=True)
class StackEndpoints:
    """How clients reach the stack; ``env()`` is what ``restlake stack env`` prints."""

    kafka_bootstrap: str
    pg_dsn: str
    lake_root: str

    def env(self) -> dict[str, str]:
        return {
            "RESTLAKE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "RESTLAKE_PG_DSN": self.pg_dsn,
            "RESTLAKE_LAKE_ROOT": self.lake_root,
        }


class LocalStack:
    """Start, inspect, fault and stop the local services under one state folder.

    ``jars_dir`` (or ``RESTLAKE_JARS_DIR``) points the jar cache elsewhere, e.g. tests share
    the project's cache; ``<state>/jars`` then becomes a link to it, so ``spark_jars(state_dir)``
    finds the jars too. ``env`` is where ``RESTLAKE_PG_DSN`` and ``RESTLAKE_JARS_DIR`` are read
    (default: the process environment); tests pass their own to stay hermetic.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        jars_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if state_dir is None:
            from restlake.settings import StackSettings

            state_dir = StackSettings().state_dir
        self._env: Mapping[str, str] = os.environ if env is None else env
        resolved_jars = jars_dir.absolute() if jars_dir is not None else jars_dir_for(state_dir, self._env)
        self.paths = StackPaths.under(state_dir, jars_dir=resolved_jars)

    # -- state -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `restlake stack up` at once would both pick ports and start brokers.
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with (self.paths.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _state(self) -> StackState | None:
        return load_state(self.paths.state_file)

    def _require_state(self) -> StackState:
        state = self._state()
        if state is None:
            raise StackError(f"no stack state in {self.paths.state_file}; run `restlake stack up` first")
        return state

    def _kafka(self, state: StackState) -> KafkaBroker:
        return KafkaBroker(self.paths, state.kafka)

    def _postgres(self, state: StackState) -> PostgresServer | None:
        """The managed server, or None when an external DSN is in use."""
        if state.postgres.external_dsn:
            return None
        return PostgresServer(self.paths, state.postgres)

    def _link_jars(self) -> None:
        default = self.paths.root / "jars"
        if self.paths.jars == default.absolute() or default.exists() or default.is_symlink():
            return
        self.paths.root.mkdir(parents=True, exist_ok=True)
        default.symlink_to(self.paths.jars, target_is_directory=True)

    def _choose_postgres(self, state: StackState | None) -> str | None:
        """The external DSN to use, or None to run our own server."""
        wanted = self._env.get(PG_DSN_ENV) or None
        if wanted is None or state is None:
            return wanted
        if not state.postgres.external_dsn and state.postgres.port is not None:
            # `eval "$(restlake stack env)"` exports our own DSN; `up` again must not mistake it
            # for an external server and stop managing ours.
            own = PostgresServer(self.paths, state.postgres).dsn
            if wanted == own:
                return None
        return wanted

    # -- public API ------------------------------------------------------------------------------

    def up(self) -> StackEndpoints:
        """Start whatever is not running (a healthy service is reused) and return the endpoints."""
        started = time.monotonic()
        with self._locked():
            self._link_jars()
            jars.resolve_all(self.paths.jars)
            state = self._state()
            external = self._choose_postgres(state)
            if state is None:
                state = new_state(self.paths, external_pg_dsn=external)
                log.info(
                    "new stack in %s: kafka port %s, controller %s, postgres port %s",
                    self.paths.root,
                    state.kafka.port,
                    state.kafka.controller_port,
                    state.postgres.port or "external",
                )
            else:
                state.postgres.external_dsn = external
                if external is None and state.postgres.port is None:
                    avoid = frozenset({state.kafka.port, state.kafka.controller_port})
                    state.postgres.port = pick_free_ports(1, avoid=avoid)[0]
            state.lake_root = str(self.paths.lake)
            save_state(self.paths.state_file, state)
            self.paths.lake.mkdir(parents=True, exist_ok=True)

            kafka = self._kafka(state)
            services: list[LocalService] = [kafka]
            if external is None:
                postgres = PostgresServer(self.paths, state.postgres)
                services.append(postgres)
                pg_dsn = postgres.dsn
            else:
                pg_dsn = external
            # Launch all before waiting for any: the JVM's start-up and initdb overlap.
            for service in services:
                service.launch()
            for service in services:
                service.wait_ready()
            if external is not None:
                log.info("%s is set: using the Postgres at %s, starting none", PG_DSN_ENV, redact(external))
                check_reachable(external)

            state.up = True
            save_state(self.paths.state_file, state)
        log.info("stack up in %.1fs (state %s)", time.monotonic() - started, self.paths.root)
        return StackEndpoints(kafka_bootstrap=kafka.bootstrap, pg_dsn=pg_dsn, lake_root=state.lake_root)

    def down(self, *, purge: bool = False) -> None:
        """Stop every service this stack started and wait for them to exit.

        ``purge`` also deletes the services' data, the lake and the state file (not the jars),
        so the next ``up`` starts from nothing on new ports.
        """
        with self._locked():
            state = self._state()
            if state is not None:
                self._kafka(state).stop()
                postgres = self._postgres(state)
                if postgres is not None:
                    postgres.stop()
                state.up = False
                save_state(self.paths.state_file, state)
            else:
                log.info("no stack state in %s; nothing to stop", self.paths.root)
            if purge:
                for folder in (self.paths.kafka, self.paths.postgres, self.paths.lake):
                    shutil.rmtree(folder, ignore_errors=True)
                self.paths.state_file.unlink(missing_ok=True)
                log.info("purged stack data under %s (jars kept)", self.paths.root)

    def status(self) -> dict[str, ServiceStatus]:
        state = self._state()
        if state is None:
            return {
                name: ServiceStatus(
                    name=name, running=False, pid=None, port=None, log=None, detail="never started"
                )
                for name in SERVICES
            }
        result = {"kafka": self._kafka(state).status()}
        postgres = self._postgres(state)
        if postgres is not None:
            result["postgres"] = postgres.status()
        else:
            dsn = state.postgres.external_dsn or ""
            try:
                check_reachable(dsn, timeout=3.0)
                reachable, detail = True, f"external {redact(dsn)}"
            except StackError as exc:
                reachable, detail = False, str(exc)
            result["postgres"] = ServiceStatus(
                name="postgres",
                running=reachable,
                pid=None,
                port=None,
                log=None,
                managed=False,
                detail=detail,
            )
        return result

    def endpoints(self) -> StackEndpoints | None:
        """The endpoints recorded by the last successful ``up``; None if the stack is not up."""
        state = self._state()
        if state is None or not state.up:
            return None
        postgres = self._postgres(state)
        pg_dsn = postgres.dsn if postgres is not None else (state.postgres.external_dsn or "")
        return StackEndpoints(
            kafka_bootstrap=self._kafka(state).bootstrap, pg_dsn=pg_dsn, lake_root=state.lake_root
        )

    def _service(self, state: StackState, name: str) -> LocalService:
        if name == "kafka":
            return self._kafka(state)
        if name == "postgres":
            postgres = self._postgres(state)
            if postgres is None:
                raise StackError(
                    f"postgres is external ({redact(state.postgres.external_dsn or '')}); "
                    "the stack does not manage it"
                )
            return postgres
        raise StackError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")

    def stop_service(self, name: str, *, kill: bool = False) -> None:
        """Stop one service; ``kill`` SIGKILLs its process group (a crash) instead of shutting it down."""
        with self._locked():
            self._service(self._require_state(), name).stop(kill=kill)

    def start_service(self, name: str) -> None:
        """Start one service again on the ports recorded in the state file and wait until it serves."""
        with self._locked():
            self._service(self._require_state(), name).start()
