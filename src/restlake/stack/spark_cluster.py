"""A Spark standalone cluster on one machine: a master and N workers from the pyspark distribution.

It is what the Kubernetes deployment runs (a master Service, workers, the driver in client mode),
small enough for a laptop or CI: loopback ports, a few hundred MB for each daemon, work files
under ``home``. Started with ``spark-class`` from pyspark's ``bin`` folder, as ``start-master.sh``
would, but in the foreground of a detached process so the pid is the JVM's.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyspark

from restlake.child_env import child_env
from restlake.errors import StackError
from restlake.stack import process
from restlake.stack.service import LocalService
from restlake.stack.state import LOOPBACK, pick_free_ports, port_is_listening

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
READY_TIMEOUT_S = 120.0


def spark_home() -> Path:
    """The pyspark distribution: its ``bin/spark-class`` and ``jars/`` are a Spark installation."""
    return Path(pyspark.__file__).resolve().parent


class SparkCluster(LocalService):
    """One master and ``workers`` workers on loopback; ``master_url`` is what a driver connects to."""

    name = "spark"

    def __init__(
        self,
        home: Path,
        *,
        worker_cores: int = 2,
        worker_memory: str = "1g",
        daemon_memory: str = "256m",
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise StackError(f"a Spark cluster needs at least one worker, got {workers}")
        self.home = home.absolute()
        self.workers = workers
        self.worker_cores = worker_cores
        # The worker offers this much to executors; each daemon itself needs only daemon_memory.
        self.worker_memory = worker_memory
        self.daemon_memory = daemon_memory
        self.master_port: int | None = None
        self.master_ui_port: int | None = None
        self._pids: dict[str, int] = {}

    @property
    def master_url(self) -> str:
        if self.master_port is None:
            raise StackError("the Spark cluster is not started")
        return f"spark://{LOOPBACK}:{self.master_port}"

    def _env(self) -> dict[str, str]:
        return child_env(
            {
                "SPARK_HOME": str(spark_home()),
                "SPARK_LOCAL_IP": LOOPBACK,
                "SPARK_DAEMON_MEMORY": self.daemon_memory,
                "SPARK_LOG_DIR": str(self.home / "logs"),
                "SPARK_WORKER_DIR": str(self.home / "work"),
                # The marker that tells our daemons from any other JVM (process.is_ours).
                "SPARK_DAEMON_JAVA_OPTS": f"-Drestlake.spark.home={self.home}",
            }
        )

    def _launch(self, role: str, argv: list[str]) -> None:
        spark_class = spark_home() / "bin" / "spark-class"
        pid = process.start_detached(
            [str(spark_class), *argv],
            log_file=self.home / f"{role}.log",
            pid_file=self.home / f"{role}.pid",
            cwd=self.home,
            env=self._env(),
        )
        self._pids[role] = pid
        log.info("spark %s started pid=%s", role, pid)

    def launch(self) -> None:
        """Start the master, wait until it listens (workers register with it), then the workers."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "work").mkdir(exist_ok=True)
        ports = pick_free_ports(2 + 2 * self.workers)
        master, master_ui = ports[0], ports[1]
        self.master_port, self.master_ui_port = master, master_ui
        self._launch(
            "master",
            [MASTER_CLASS, "--host", LOOPBACK, "--port", str(master), "--webui-port", str(master_ui)],
        )
        self._wait(
            lambda: port_is_listening(master), f"the master to listen on port {master}", READY_TIMEOUT_S
        )
        for index in range(self.workers):
            worker, worker_ui = ports[2 + 2 * index], ports[3 + 2 * index]
            # The first keeps the historical names (worker.log, worker.pid) the stack's tools read.
            role = "worker" if index == 0 else f"worker-{index + 1}"
            self._launch(
                role,
                [
                    WORKER_CLASS,
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(worker),
                    "--webui-port",
                    str(worker_ui),
                    "--cores",
                    str(self.worker_cores),
                    "--memory",
                    self.worker_memory,
                    "--work-dir",
                    str(self.home / "work"),
                    self.master_url,
                ],
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until every worker has registered with the master."""
        self._wait(
            lambda: self.alive_workers() >= self.workers,
            f"{self.workers} worker(s) to register with the master",
            timeout,
        )
        log.info("spark cluster ready master=%s workers=%s", self.master_url, self.workers)

    def alive_workers(self) -> int:
        """Workers the master counts as ALIVE, from its web UI's JSON."""
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.master_ui_port}/json/", timeout=2) as resp:
                return int(json.load(resp).get("aliveworkers", 0))
        except (OSError, ValueError):
            return 0

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for role, pid in self._pids.items():
                if not process.is_alive(pid):
                    raise StackError(
                        f"spark {role} exited during start-up; read {self.home / (role + '.log')}"
                    )
            if ready():
                return
            time.sleep(0.5)
        raise StackError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.home}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the workers (and their executors), then the master."""
        workers = [role for role in self._pids if role.startswith("worker")]
        for role in [*workers, "master"]:
            pid = self._pids.pop(role, None)
            if pid is not None and process.is_alive(pid):
                process.stop(f"spark {role}", pid, timeout=20.0, kill=kill)
