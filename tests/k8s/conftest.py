"""Session fixtures of the k8s tier: a real control plane, the CRDs, and the operator as a process.

The control plane is built and started by ``harness.py`` (nothing to install by hand). When it
cannot be had here (no Go toolchain, the module proxy refusing a module), every test in the tier is
skipped with the reason, never failed and never passed without a server.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py sits beside this file

import harness
from harness import eventually

REPO = harness.REPO_ROOT
# CI lays shared/ beside the clone; the fixtures hold third-party CRDs exactly as their projects ship them.
FIXTURE_CRDS = REPO.parent / "shared" / "fixtures" / "crds"
THIRD_PARTY_CRDS = ("strimzi-kafkatopic.yaml", "monitoring.coreos.com_servicemonitors.yaml")
PEERING_CRDS = [
    REPO / "charts" / "restlake" / "crds" / f"{n}.yaml"
    for n in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
]
PEERING = "restlake-test"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.ControlPlane]:
    try:
        binaries = harness.ensure_binaries()
    except harness.HarnessUnavailable as exc:
        pytest.skip(f"no Kubernetes control plane: {exc}")
    plane = harness.ControlPlane(binaries, tmp_path_factory.mktemp("control-plane"))
    try:
        plane.start()
    except harness.HarnessUnavailable as exc:
        plane.stop()
        pytest.skip(f"the Kubernetes control plane did not start: {exc}")
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api(control_plane: harness.ControlPlane) -> Any:
    """A ``kubernetes`` ApiClient on the test control plane."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(control_plane.kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def _wait_established(plane: harness.ControlPlane, names: list[str]) -> None:
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])


@pytest.fixture(scope="session")
def crds(control_plane: harness.ControlPlane) -> list[str]:
    """Our CRDs, kopf's peering CRDs and the third-party ones the operator integrates with."""
    missing = [n for n in THIRD_PARTY_CRDS if not (FIXTURE_CRDS / n).is_file()]
    if missing:
        pytest.skip(f"fixture CRDs {missing} not found in {FIXTURE_CRDS} (shared/ must sit beside the repo)")
    files = [
        REPO / "crds" / "ingestionsources.restlake.io.yaml",
        REPO / "crds" / "backfills.restlake.io.yaml",
        *PEERING_CRDS,
        *(FIXTURE_CRDS / n for n in THIRD_PARTY_CRDS),
    ]
    names: list[str] = []
    for path in files:
        # Server-side: the Prometheus Operator's CRDs exceed the client-side last-applied annotation limit.
        control_plane.kubectl("apply", "--server-side", "-f", str(path))
        names += [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]
    _wait_established(control_plane, names)
    return names


class MetricsStub:
    """Loopback stand-in for fetchers' /metrics: the operator's status timer reads it by URL template."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = stub.pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *_: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{namespace}}/{{service}}/metrics"

    def set(self, namespace: str, service: str, text: str) -> None:
        self.pages[f"/{namespace}/{service}/metrics"] = text

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def metrics_stub() -> Iterator[MetricsStub]:
    stub = MetricsStub()
    yield stub
    stub.close()


class OperatorProcess:
    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, env: dict[str, str]) -> None:
        self.popen = popen
        self.log_path = log_path
        self.env = env

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None


@pytest.fixture(scope="session")
def operator(
    control_plane: harness.ControlPlane,
    crds: list[str],
    metrics_stub: MetricsStub,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """`restlake operator run` as a subprocess, peering mandatory, status refreshed every second."""
    control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}
        ),
    )
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "RESTLAKE_OPERATOR_PEERING": PEERING,
        "RESTLAKE_OPERATOR_PEERING_MANDATORY": "true",
        "RESTLAKE_OPERATOR_STATUS_INTERVAL": "1",
        "RESTLAKE_OPERATOR_METRICS_URL": metrics_stub.url_template(),
        "RESTLAKE_OPERATOR_TOPIC_ADMIN": "false",
        "RESTLAKE_OPERATOR_RELEASE": "rl",
        "RESTLAKE_OPERATOR_PRIORITY": "100",
    }
    with log_path.open("wb") as handle:
        popen = subprocess.Popen(
            [sys.executable, "-m", "restlake.cli.operator", "run"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )
    process = OperatorProcess(popen, log_path, env)
    try:
        eventually(
            lambda: "Reconciled" in process.log() or _started(process),
            timeout=60,
            what="the operator to start",
        )
        yield process
    finally:
        popen.terminate()
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)
        if os.environ.get("RESTLAKE_K8S_SHOW_OPERATOR_LOG"):
            print(process.log()[-20000:])


def _started(process: OperatorProcess) -> bool:
    if not process.alive():
        raise AssertionError(f"operator exited {process.popen.returncode}:\n{process.log()[-4000:]}")
    # kopf logs this once the watch streams for the resource are up.
    return "operator configured" in process.log()


@pytest.fixture
def namespace(control_plane: harness.ControlPlane) -> Iterator[str]:
    """A throw-away namespace holding the operator's Secrets, as the chart's release namespace does."""
    yield from _namespace(control_plane, operator_secrets=True)


@pytest.fixture
def second_namespace(control_plane: harness.ControlPlane) -> Iterator[str]:
    """Another throw-away namespace, for what two namespaces must not share."""
    yield from _namespace(control_plane, operator_secrets=True)


@pytest.fixture
def bare_namespace(control_plane: harness.ControlPlane) -> Iterator[str]:
    """A namespace nobody copied the operator's Secrets into."""
    yield from _namespace(control_plane, operator_secrets=False)


def _namespace(control_plane: harness.ControlPlane, *, operator_secrets: bool) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    if operator_secrets:
        control_plane.kubectl(
            "create",
            "secret",
            "generic",
            harness.OPERATOR_PG_SECRET,
            "-n",
            name,
            "--from-literal=dsn=postgresql://pg/db",
        )
    yield name
    with contextlib.suppress(AssertionError):
        control_plane.kubectl("delete", "namespace", name, "--wait=false")
