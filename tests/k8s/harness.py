"""A real Kubernetes control plane on loopback for tests/k8s (the envtest approach, without Docker).

Binaries come from the Go module proxy: ``tools/go.mod`` pins ``k8s.io/kubernetes`` and etcd, and
``go build`` turns them into ``etcd``, ``kube-apiserver``, ``kube-controller-manager`` and ``kubectl``
under ``<tools cache>/k8s-bin/<version>-<pin hash>/`` built once and
reused (``RESTLAKE_TOOLS_DIR``, default ``~/.cache/restlake/tools``). The control plane is etcd
(data in a temporary folder, fsync off), the API server on a random loopback port with a
self-signed serving certificate and a static admin token, and the controller manager for garbage
collection and Deployment → ReplicaSet → Pod. There is no scheduler and no kubelet: pods stay
Pending, which is exactly what the operator's status must then report.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from restlake.operator.settings import OperatorSettings
from restlake.settings import StackSettings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# The operator's own Secret its rendered pods read (the default of OperatorSettings.pg_dsn_secret,
# which the test operator runs with): the chart creates it in the release namespace; other
# namespaces with sources need a copy.
OPERATOR_PG_SECRET: str = OperatorSettings.model_fields["pg_dsn_secret"].default
TOOLS_MODULE = Path(__file__).resolve().parent / "tools"
BIN_ROOT = StackSettings().tools_dir / "k8s-bin"

# Binary name → Go package; one `go build` compiles them together, sharing the common packages.
PACKAGES = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}
# The controllers the tests rely on; the rest (nodes, volumes, cloud) would only burn CPU.
CONTROLLERS = (
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
)
ADMIN_TOKEN = "restlake-test-admin-token"  # loopback only, throw-away cluster


T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.3, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class HarnessUnavailable(RuntimeError):
    """The control plane cannot be had here; the message says what was refused (tests skip on it)."""


@dataclass(frozen=True)
class Binaries:
    directory: Path
    version: str
    build: dict[str, object]

    def __getitem__(self, name: str) -> Path:
        return self.directory / name


def kubernetes_version() -> str:
    """The ``k8s.io/kubernetes`` version pinned in tools/go.mod."""
    found = re.search(
        r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", (TOOLS_MODULE / "go.mod").read_text(), re.M
    )
    if found is None:
        raise HarnessUnavailable("tests/k8s/tools/go.mod does not require k8s.io/kubernetes")
    return found.group(1)


def _pins_hash() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((TOOLS_MODULE / name).read_bytes())
    return digest.hexdigest()[:10]


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GOTOOLCHAIN": "local",  # never download a toolchain: only the module proxy is reachable
            "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly",
            "GOWORK": "off",
            "CGO_ENABLED": "0",
        }
    )
    return env


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_binaries() -> Binaries:
    """The control-plane binaries, built from the Go module proxy on first use (minutes, once)."""
    version = kubernetes_version()
    home = BIN_ROOT / f"{version}-{_pins_hash()}"
    record = home / "build.json"
    if record.exists():
        return Binaries(home, version, json.loads(record.read_text()))
    go = shutil.which("go")
    if go is None:
        raise HarnessUnavailable(
            "no `go` on PATH: the Kubernetes binaries are built from the Go module proxy"
        )
    with _lock(BIN_ROOT / f".{home.name}.lock"):
        if record.exists():  # built by another session while we waited
            return Binaries(home, version, json.loads(record.read_text()))
        staging = home.with_name(home.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        env = _go_env()
        started = time.monotonic()
        download = subprocess.run(
            [go, "mod", "download"], cwd=TOOLS_MODULE, env=env, capture_output=True, text=True, check=False
        )
        if download.returncode != 0:
            raise HarnessUnavailable(
                f"`go mod download` for {TOOLS_MODULE} failed:\n{download.stderr[-3000:]}"
            )
        downloaded = time.monotonic()
        cmd = [go, "build", "-p", "2", "-ldflags=-s -w", "-o", f"{staging}/", *PACKAGES.values()]
        log.info("building Kubernetes %s control plane (a few minutes, once): %s", version, " ".join(cmd))
        built = subprocess.run(cmd, cwd=TOOLS_MODULE, env=env, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise HarnessUnavailable(f"`{' '.join(cmd)}` failed:\n{built.stderr[-3000:]}")
        (staging / "server").rename(staging / "etcd")  # `go build` names it after the module's last element
        finished = time.monotonic()
        info: dict[str, object] = {
            "kubernetes": version,
            "packages": PACKAGES,
            "download_seconds": round(downloaded - started, 1),
            "build_seconds": round(finished - downloaded, 1),
            "sizes_mb": {n: round((staging / n).stat().st_size / 1e6, 1) for n in PACKAGES},
        }
        (staging / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)  # atomic: a half-built folder is never picked up
        log.info("built Kubernetes binaries in %.0fs into %s", finished - started, home)
        return Binaries(home, version, info)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on loopback, state under ``workdir``."""

    binaries: Binaries
    workdir: Path
    controller_manager: bool = True
    processes: list[_Process] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "apiserver.crt"

    def _spawn(self, name: str, args: list[str]) -> _Process:
        log_path = self.workdir / f"{name}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(  # each in its own session, so a test's Ctrl-C does not reach it first
            args, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        handle.close()
        process = _Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def _keys(self) -> Path:
        key = self.workdir / "sa.key"
        openssl = shutil.which("openssl")
        if openssl is None:
            raise HarnessUnavailable("no `openssl` on PATH to make the service-account signing key")
        subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        return key

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port = free_port(), free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries["etcd"]),
                "--name=restlake-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=restlake-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",  # throw-away data; fsync would dominate test time
                "--log-level=warn",
            ],
        )
        self._wait_http(f"http://127.0.0.1:{etcd_port}/health", etcd, timeout=30)

        key = self._keys()
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{ADMIN_TOKEN},restlake-admin,restlake-admin,"system:masters"\n')
        self.port = free_port()
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={key}",
                f"--service-account-signing-key-file={key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                # A loopback advertise address cannot be an Endpoints IP; nothing here dials it.
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait_http(f"{self.url}/readyz", apiserver, timeout=timeout, token=ADMIN_TOKEN)
        self._write_kubeconfig()

        if self.controller_manager:
            kcm = self._spawn(
                "kube-controller-manager",
                [
                    str(self.binaries["kube-controller-manager"]),
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    f"--controllers={','.join(CONTROLLERS)}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    f"--cert-dir={self.workdir / 'kcm-pki'}",
                    f"--service-account-private-key-file={key}",
                    f"--root-ca-file={self.ca_file}",
                    "--use-service-account-credentials=false",
                    "--concurrent-gc-syncs=5",
                    "--v=1",
                ],
            )
            time.sleep(1.0)
            if kcm.popen.poll() is not None:
                raise HarnessUnavailable(f"kube-controller-manager exited:\n{kcm.tail()}")

    def _wait_http(self, url: str, process: _Process, *, timeout: float, token: str | None = None) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # readiness poll only; clients verify via the kubeconfig
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise HarnessUnavailable(
                    f"{process.name} exited {process.popen.returncode}:\n{process.tail()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=5, context=context) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise HarnessUnavailable(
            f"{process.name} not ready at {url} after {timeout}s ({last}):\n{process.tail()}"
        )

    def _write_kubeconfig(self) -> None:

        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "restlake-test", "cluster": {"server": self.url, "certificate-authority-data": ca}}
            ],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": "restlake-test", "context": {"cluster": "restlake-test", "user": "admin"}}],
            "current-context": "restlake-test",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane."""
        proc = subprocess.run(
            [str(self.binaries["kubectl"]), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


if __name__ == "__main__":  # `python tests/k8s/harness.py` pre-builds the binaries and prints the record
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(ensure_binaries().build, indent=2))
