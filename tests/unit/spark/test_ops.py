"""The driver's ops endpoint: what the kubelet's probes and Prometheus get from a stream job."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from restlake.jobs.spark import ops


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_ready_only_while_the_query_runs_with_an_executor() -> None:
    health = ops.DriverHealth()
    port = ops.serve(health, 0, "127.0.0.1")
    assert get(port, "/readyz") == (503, "streaming query not running\n")
    assert get(port, "/healthz")[0] == 200

    # Registered with the master, but no worker had a free core: running, yet nothing moves.
    health.beat(query_active=True, executors=0)
    status, body = get(port, "/readyz")
    assert (status, body) == (503, "no executor: the Spark cluster has no free cores for this job\n")

    health.beat(query_active=True, executors=1)
    assert get(port, "/readyz")[0] == 200
    status, text = get(port, "/metrics")
    assert status == 200 and "# TYPE" in text
    assert get(port, "/nope")[0] == 404


def test_a_local_master_needs_no_executor() -> None:
    health = ops.DriverHealth(local=True)
    health.beat(query_active=True, executors=0)
    assert health.ready() == (True, "query running, executors=local")


def test_a_silent_driver_loop_fails_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    health = ops.DriverHealth()
    assert health.live() == (True, "ok")
    monkeypatch.setattr(ops.time, "monotonic", lambda: health.last_beat + ops.STALE_AFTER_S + 5)
    ok, why = health.live()
    assert not ok and why.startswith("driver loop silent for 65s")
