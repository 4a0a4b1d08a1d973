"""A local MinIO server: the S3-compatible store an ``s3a://`` lake root and checkpoints run on.

The binary is built from the Go module proxy (``go install github.com/minio/minio@<pin>``) the
first time it is needed and cached under ``<tools cache>/minio-<pin>/`` (``StackSettings.tools_dir``,
``RESTLAKE_TOOLS_DIR``, shared by every clone on the machine); later starts reuse it.
The server listens on loopback, keeps its data under the state folder, and takes its root user
and password from ``S3Settings`` through the environment (never the command line, never a log).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from restlake.child_env import child_env
from restlake.errors import StackError
from restlake.settings import S3Settings
from restlake.stack import process
from restlake.stack.service import LocalService
from restlake.stack.state import LOOPBACK, pick_free_ports

log = logging.getLogger(__name__)

MODULE = "github.com/minio/minio"
# The server publishes RELEASE.* tags, which are not semver, so the proxy serves commits as
# pseudo-versions: pin one, so every machine builds the same server.
VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
READY_TIMEOUT_S = 60.0
# Measured on 2 busy cores: the first build takes minutes (downloads plus compile); allow for a
# slower machine rather than fail a first test run.
BUILD_TIMEOUT_S = 1800.0


def binary_path(tools_dir: Path) -> Path:
    return tools_dir.absolute() / f"minio-{VERSION}" / "minio"


def ensure_binary(tools_dir: Path) -> Path:
    """The cached server binary, built with ``go install`` when missing (one builder at a time)."""
    target = binary_path(tools_dir)
    if os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise StackError(f"MinIO is not built at {target} and no `go` is on PATH to build {MODULE}@{VERSION}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.access(target, os.X_OK):
            return target
        started = time.monotonic()
        log.info("building MinIO %s@%s into %s (first use only)", MODULE, VERSION, target.parent)
        env = child_env({"GOBIN": str(target.parent), "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"})
        try:
            result = subprocess.run(
                [go, "install", f"{MODULE}@{VERSION}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"building MinIO took more than {BUILD_TIMEOUT_S:.0f}s") from exc
        if result.returncode != 0 or not os.access(target, os.X_OK):
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise StackError(f"`go install {MODULE}@{VERSION}` failed (exit {result.returncode}):\n{tail}")
        log.info("built MinIO in %.0fs", time.monotonic() - started)
    return target


class MinioServer(LocalService):
    """One MinIO server on a loopback port, data and log under ``home``."""

    name = "minio"

    def __init__(self, home: Path, tools_dir: Path | None = None, settings: S3Settings | None = None) -> None:
        if tools_dir is None:
            from restlake.settings import StackSettings

            tools_dir = StackSettings().tools_dir
        self.home = home.absolute()
        self.tools_dir = tools_dir.absolute()
        self.settings = settings or S3Settings()
        self.port: int | None = None
        self._pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "minio.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "minio.pid"

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise StackError("MinIO is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def s3_settings(self) -> S3Settings:
        """The settings a client uses to reach this server (endpoint filled in)."""
        return self.settings.model_copy(update={"endpoint": self.endpoint})

    def _markers(self) -> list[str]:
        return ["minio", str(self.data_dir)]

    def launch(self) -> None:
        """Start a server on new free ports (MinIO is per test module: nothing to adopt)."""
        binary = ensure_binary(self.tools_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port, console = pick_free_ports(2)
        env = child_env(
            {
                "MINIO_ROOT_USER": self.settings.access_key.get_secret_value(),
                "MINIO_ROOT_PASSWORD": self.settings.secret_key.get_secret_value(),
                # A local test store: no phoning home, no update checks.
                "MINIO_UPDATE": "off",
                "MINIO_BROWSER": "off",
            }
        )
        argv = [
            str(binary),
            "server",
            str(self.data_dir),
            "--address",
            f"{LOOPBACK}:{self.port}",
            "--console-address",
            f"{LOOPBACK}:{console}",
            "--quiet",
        ]
        pid = process.start_detached(
            argv, log_file=self.log_file, pid_file=self.pid_file, cwd=self.home, env=env
        )
        self._pid = pid
        log.info("minio started pid=%s port=%s data=%s", pid, self.port, self.data_dir)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        # ready, not live: live answers before the drive is formatted and S3 calls get 503.
        url = f"{self.endpoint}/minio/health/ready"
        while time.monotonic() < deadline:
            if self._pid is None or not process.is_alive(self._pid):
                raise StackError(f"MinIO exited during start-up; read {self.log_file}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise StackError(
            f"MinIO on {self.endpoint} was not ready within {timeout:.0f}s; read {self.log_file}"
        )

    def stop(self, *, kill: bool = False) -> None:
        pid = self._pid if self._pid is not None else process.live_pid(self.pid_file, self._markers())
        if pid is not None and process.is_alive(pid):
            process.stop(self.name, pid, kill=kill)
        self._pid = None

    def create_bucket(self, bucket: str, timeout: float = 30.0) -> None:
        """Create ``bucket`` (s3a never creates one); an existing bucket of ours is fine.

        503 is retried: a server that just became ready may still be initialising its subsystems.
        """
        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(
                f"{self.endpoint}/{bucket}",
                method="PUT",
                headers=sigv4_headers(self.s3_settings(), "PUT", f"/{bucket}", f"{LOOPBACK}:{self.port}"),
            )
            try:
                with urllib.request.urlopen(request, timeout=10):
                    pass
            except urllib.error.HTTPError as exc:
                body = exc.read().decode("utf-8", "replace")
                if exc.code == 409 and "BucketAlreadyOwnedByYou" in body:
                    return
                if exc.code == 503 and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                raise StackError(
                    f"creating bucket {bucket} on {self.endpoint} failed: HTTP {exc.code}"
                ) from None
            log.info("bucket created bucket=%s endpoint=%s", bucket, self.endpoint)
            return


def sigv4_headers(
    settings: S3Settings, method: str, path: str, host: str, now: datetime | None = None
) -> dict[str, str]:
    """AWS Signature V4 headers for a body-less request without a query string."""
    now = now or datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(b"").hexdigest()
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = "\n".join(
        [
            method,
            path,
            "",
            f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n",
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{settings.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + settings.secret_key.get_secret_value()).encode()
    for part in (day, settings.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    access = settings.access_key.get_secret_value()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_hash,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}",
    }
