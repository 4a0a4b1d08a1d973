"""A single-node Kafka 4 broker in KRaft mode (combined broker and controller) on loopback.

The broker is the real one, ``java -cp <jars> kafka.Kafka server.properties``, from the jars
``restlake stack jars`` resolved; its data, logs and pid file live under ``<state>/kafka``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from restlake.errors import StackError
from restlake.kafka_logging import client_config
from restlake.settings import KafkaSettings, StackSettings
from restlake.stack import process
from restlake.stack.jars import kafka_classpath
from restlake.stack.process import ServiceStatus
from restlake.stack.service import LocalService
from restlake.stack.state import LOOPBACK, KafkaState, StackPaths, wait_port_free

log = logging.getLogger(__name__)

# The machine has 2 cores and runs the broker beside Postgres, Spark and the fetcher: a
# small heap keeps the broker from claiming memory it never needs for local volumes.
JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# A service killed a moment ago may still hold its port while the kernel tears it down.
PORT_RELEASE_TIMEOUT_S = 10.0
_FORMAT_TIMEOUT_S = 120.0


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set (as pyspark does), else ``java`` on PATH."""
    java_home = StackSettings().java_home
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).is_file():
        where = f"JAVA_HOME={java_home}" if java_home else "PATH"
        raise StackError(f"no `java` found via {where}; Kafka 4 needs Java 17 or newer")
    return candidate


class KafkaBroker(LocalService):
    """One KRaft broker+controller whose ports and cluster id come from the state file."""

    name = "kafka"

    def __init__(self, paths: StackPaths, state: KafkaState) -> None:
        self.paths = paths
        self.state = state
        self.home = paths.kafka
        self.data_dir = self.home / "data"
        self.config_file = self.home / "server.properties"
        self.log4j_file = self.home / "log4j2.properties"
        self.log_file = self.home / "logs" / "server.log"
        self.console_file = self.home / "logs" / "console.log"
        self.pid_file = self.home / "kafka.pid"

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.state.port}"

    @property
    def markers(self) -> tuple[str, ...]:
        # The config path is unique to this state folder, so another stack's broker never matches.
        return ("kafka.Kafka", str(self.config_file))

    def pid(self) -> int | None:
        return process.live_pid(self.pid_file, self.markers)

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            name=self.name,
            running=pid is not None,
            pid=pid,
            port=self.state.port,
            log=self.log_file,
            detail=f"controller port {self.state.controller_port}, cluster {self.state.cluster_id}",
        )

    def server_properties(self) -> str:
        s = self.state
        partitions = KafkaSettings().partitions
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            # Kafka 4 dynamic quorum: bootstrap servers plus `format --standalone` make this
            # node the only voter.
            f"controller.quorum.bootstrap.servers={LOOPBACK}:{s.controller_port}",
            f"listeners=PLAINTEXT://{LOOPBACK}:{s.port},CONTROLLER://{LOOPBACK}:{s.controller_port}",
            f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{s.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "auto.create.topics.enable=true",
            f"num.partitions={partitions}",
            "offsets.topic.replication.factor=1",
            # 50 partitions by default: creating them on the first consumer group costs seconds
            # on 2 cores for no benefit on one node.
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=10",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # A restarted broker re-registers only after its previous session expired: with the
            # 9 s default every crash/restart fault test waits ~10 s for nothing on one node.
            "broker.heartbeat.interval.ms=500",
            "broker.session.timeout.ms=3000",
        ]
        return "\n".join(lines) + "\n"

    def log4j_properties(self) -> str:
        lines = [
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = file",
            f"appender.file.fileName = {self.log_file}",
            f"appender.file.filePattern = {self.log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 50MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = file",
            # Per-request state-change chatter drowns the lines that explain a failure.
            "logger.statechange.name = state.change.logger",
            "logger.statechange.level = WARN",
        ]
        return "\n".join(lines) + "\n"

    def _classpath(self) -> str:
        return os.pathsep.join(str(p) for p in kafka_classpath(self.paths.jars))

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.server_properties(), encoding="utf-8")
        self.log4j_file.write_text(self.log4j_properties(), encoding="utf-8")

    def _formatted_cluster_id(self) -> str | None:
        meta = self.data_dir / "meta.properties"
        if not meta.is_file():
            return None
        for line in meta.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

    def _format(self, java: str) -> None:
        formatted = self._formatted_cluster_id()
        if formatted == self.state.cluster_id:
            return
        if formatted is not None:
            # The state file was lost or reset: the old log belongs to another cluster id and a
            # controller endpoint that may have changed, so the broker could never start on it.
            log.warning(
                "kafka data in %s belongs to cluster %s, the state file says %s; wiping it",
                self.data_dir,
                formatted,
                self.state.cluster_id,
            )
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        argv = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.state.cluster_id,
            "--config",
            str(self.config_file),
            "--standalone",
        ]
        log.info("formatting kafka storage %s (cluster %s)", self.data_dir, self.state.cluster_id)
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_FORMAT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed ({result.returncode}): kafka.tools.StorageTool format "
                f"--cluster-id {self.state.cluster_id} --config {self.config_file} --standalone\n"
                f"{(result.stdout + result.stderr).strip()[-2000:]}\nSee also {self.log_file}."
            )

    def launch(self) -> None:
        """Start the broker unless ours is already running; does not wait for it to serve."""
        pid = self.pid()
        if pid is not None:
            log.info("kafka already running (pid %s) on %s", pid, self.bootstrap)
            return
        for port in (self.state.port, self.state.controller_port):
            if not wait_port_free(port, PORT_RELEASE_TIMEOUT_S):
                raise StackError(
                    f"cannot start Kafka: port {port} recorded in {self.paths.state_file} is taken by "
                    "another process. Stop that process, or run `restlake stack down --purge` "
                    "to pick new ports."
                )
        java = java_binary()
        self._write_config()
        self._format(java)
        argv = [
            java,
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_file),
        ]
        pid = process.start_detached(argv, log_file=self.console_file, pid_file=self.pid_file, cwd=self.home)
        log.info("started kafka (pid %s) on %s, log %s", pid, self.bootstrap, self.log_file)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until the broker answers a metadata request as this cluster, or raise StackError."""
        from confluent_kafka.admin import AdminClient

        # Every refused connection while the JVM boots goes to Python logging, rate-limited.
        admin = AdminClient(client_config({"bootstrap.servers": self.bootstrap, "log_level": 3}, log))
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is None:
                raise StackError(
                    f"Kafka exited during start-up; read {self.log_file} and {self.console_file}"
                )
            try:
                meta = admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            except Exception as exc:  # confluent-kafka raises KafkaException; any failure means "not yet"
                last_error = str(exc)
                time.sleep(0.5)
                continue
            if meta.cluster_id != self.state.cluster_id:
                raise StackError(
                    f"the broker on {self.bootstrap} reports cluster {meta.cluster_id}, expected "
                    f"{self.state.cluster_id}: another Kafka holds the port. Read {self.log_file}."
                )
            if meta.brokers:
                log.info("kafka ready on %s (pid %s)", self.bootstrap, pid)
                return
            last_error = "metadata lists no brokers"
            time.sleep(0.5)
        raise StackError(
            f"Kafka on {self.bootstrap} was not ready within {timeout:.0f}s (last error: {last_error}); "
            f"read {self.log_file} and {self.console_file}"
        )

    def stop(self, *, kill: bool = False) -> None:
        pid = self.pid()
        if pid is None:
            log.info("kafka is not running")
            return
        process.stop(self.name, pid, timeout=STOP_TIMEOUT_S, kill=kill)
        self.pid_file.unlink(missing_ok=True)
