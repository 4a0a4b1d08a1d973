"""Debian-packaged monitoring services the integration tests run for real: install, start, wait."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def debian_tools(package: str, *names: str) -> list[str]:
    """The paths of ``names`` from PATH, installing Debian's ``package`` first when any is missing.

    Skips the test when they are missing and the package cannot be installed (not root, no apt-get).
    """
    found = [shutil.which(name) for name in names]
    if all(found):
        return [str(path) for path in found]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            f"{'/'.join(names)} not on PATH, and installing Debian's {package} needs root and apt-get"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, check=False, timeout=600).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"apt-get install {package} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    found = [shutil.which(name) for name in names]
    assert all(found), f"Debian's {package} package installed no {'/'.join(names)} on PATH"
    return [str(path) for path in found]


def start_until_ready(
    argv: list[str], log_path: Path, base_url: str, timeout: float
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (output to ``log_path``) and wait until ``<base_url>/-/ready`` answers.

    The caller terminates the process; one that exits early fails the test with its log's tail.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
        try:
            urllib.request.urlopen(f"{base_url}/-/ready", timeout=2).close()
            return process
        except OSError:
            if time.monotonic() >= deadline:
                process.terminate()
                raise AssertionError(
                    f"{Path(argv[0]).name} did not become ready within {timeout:.0f} s"
                ) from None
            time.sleep(0.2)
