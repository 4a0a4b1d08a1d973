"""Run a demo API as a child process: its own interpreter, so a client in this one does not share a GIL."""

from __future__ import annotations

import logging
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO

from restlake.child_env import child_env

log = logging.getLogger(__name__)

READY_PREFIX = "restlake demo-api listening on "
_READY = re.compile(re.escape(READY_PREFIX) + r"(http://\S+)")


def _first_ready_line(stream: IO[str], deadline: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        # Reads until the ready line; afterwards the server writes nothing more to stdout.
        for line in stream:
            lines.put(line)
            if _READY.search(line):
                return
        lines.put("")

    threading.Thread(target=pump, name="demo-api-stdout", daemon=True).start()
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            return None
        if not line:
            return None
        if match := _READY.search(line):
            return match.group(1)
    return None


def _wait_healthy(base_url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


def start_demo_api_process(
    args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m restlake.demoapi serve <args>``; return it and its base URL once /healthz answers.

    ``args`` are ``serve`` flags (``--records 1000000 --seed 7``…). Port 0 picks a free port.
    stderr (the server's logs) is inherited. Raises RuntimeError if it is not healthy within ``timeout``.
    """
    cmd = [sys.executable, "-m", "restlake.demoapi", "serve", "--host", host, "--port", str(port), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env(env))
    deadline = time.monotonic() + timeout
    if proc.stdout is None:  # never with stdout=PIPE; says so rather than failing on None later
        raise RuntimeError("the demo API process has no stdout pipe")
    base_url = _first_ready_line(proc.stdout, deadline)
    if base_url is None or not _wait_healthy(base_url, deadline):
        stop_demo_api_process(proc)
        raise RuntimeError(f"demo api did not become healthy within {timeout}s (exit code {proc.returncode})")
    log.info("demo api process started", extra={"pid": proc.pid, "base_url": base_url})
    return proc, base_url


def stop_demo_api_process(proc: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """SIGTERM (graceful shutdown), then SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


@contextmanager
def demo_api_process(args: Sequence[str] = (), **kwargs: object) -> Iterator[str]:
    """``with demo_api_process(["--records", "1000"]) as base_url: …``"""
    proc, base_url = start_demo_api_process(args, **kwargs)  # type: ignore[arg-type]
    try:
        yield base_url
    finally:
        stop_demo_api_process(proc)
