"""The driver's ops endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for kubelet.

Readiness means "this source is being processed": the query is running *and* Spark gave it at
least one executor. On a standalone cluster whose cores are all taken, a driver starts, registers,
and then waits for an executor forever; without this, its Deployment would look available and the
source's ``StreamReady`` would say True while nothing moves.

Liveness is a heartbeat from the driver's wait loop: if the loop stops beating (a JVM or Py4J call
that never returns), the kubelet restarts the pod and the checkpoint resumes the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

# Seconds without a heartbeat before /healthz fails: far above the loop's 1 s beat, below the
# probe's period times failureThreshold, so a stuck driver is restarted within a few minutes.
STALE_AFTER_S = 60.0


@dataclass
class DriverHealth:
    """What the probes answer from; written by the driver's wait loop, read by the HTTP threads."""

    local: bool = False  # local[N] masters run tasks in the driver: no executor to wait for
    query_active: bool = False
    executors: int = 0
    last_beat: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def beat(self, *, query_active: bool, executors: int) -> None:
        with self._lock:
            self.query_active = query_active
            self.executors = executors
            self.last_beat = time.monotonic()

    def live(self) -> tuple[bool, str]:
        with self._lock:
            age = time.monotonic() - self.last_beat
        if age > STALE_AFTER_S:
            return False, f"driver loop silent for {age:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            active, executors, local = self.query_active, self.executors, self.local
        if not active:
            return False, "streaming query not running"
        if not local and executors < 1:
            return False, "no executor: the Spark cluster has no free cores for this job"
        return True, f"query running, executors={executors if not local else 'local'}"


def _handler(health: DriverHealth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok, why = health.live()
                self._send(200 if ok else 503, why.encode() + b"\n")
            elif self.path.startswith("/readyz"):
                ok, why = health.ready()
                self._send(200 if ok else 503, why.encode() + b"\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Probes hit this every few seconds; their lines would drown the driver's log.
            return

    return Handler


def serve(health: DriverHealth, port: int, address: str) -> int:
    """Serve the three paths on a daemon thread; return the port (``port`` 0 picks a free one)."""
    server = ThreadingHTTPServer((address, port), _handler(health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="driver-ops", daemon=True).start()
    bound = int(server.server_address[1])
    log.info("driver ops served address=%s port=%s paths=/metrics,/healthz,/readyz", address, bound)
    return bound
