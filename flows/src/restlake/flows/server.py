"""A local Prefect server: ``prefect server start`` on loopback, its SQLite database under the state folder.

Used by ``restlake flows serve`` when no server is configured (``PREFECT_API_URL`` unset), so the
flows have a real API and UI to report to without any setup. The server's log is
``<state>/prefect/server.log``; analytics are off (no network beyond loopback).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from restlake.child_env import child_env
from restlake.errors import StackError

log = logging.getLogger(__name__)

DEFAULT_PORT = 4200
START_TIMEOUT_S = 120.0


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def server_env(home: Path, port: int) -> dict[str, str]:
    """The server's environment: its home and SQLite database under ``home``, loopback only."""
    return child_env(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
        # The server is the API, not a client of one.
        without=["PREFECT_API_URL"],
    )


class LocalPrefectServer:
    """``prefect server start`` as a child process; ``start`` returns its API URL once healthy."""

    def __init__(self, state_dir: Path, port: int = DEFAULT_PORT) -> None:
        self.home = state_dir / "prefect"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return api_url(self.port)

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
        argv = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                argv, env=server_env(self.home, self.port), stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(
                    f"prefect server exited with code {self.process.returncode} while starting; "
                    f"see {self.log_path}"
                )
            if self.healthy():
                log.info("prefect server up url=%s database=%s", self.url, self.home / "prefect.db")
                return self.url
            time.sleep(0.5)
        self.stop()
        raise StackError(
            f"prefect server did not answer {self.url}/health within {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
