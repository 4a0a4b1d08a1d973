"""Run a program with its stdout on a pseudo-terminal and collect what it draws there.

One reader for two tiers: tests/unit/cli/test_progress.py runs the live display in a child Python,
tests/integration/terminal.py runs whole `restlake` commands; both must see what a person at a
terminal sees, so neither may take a pipe's shortcut.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO


def run_on_pty(
    argv: list[str],
    *,
    env: Mapping[str, str],
    stderr: IO[bytes],
    cwd: Path | None = None,
    timeout: float,
) -> tuple[int, bytes]:
    """``argv`` with stdout on a pty and stdin closed, waited for: its exit code and every byte it wrote.

    stderr goes to a file the caller reads, not a pipe: a pipe nobody drains while the pty is read
    can fill and stall the child. Raises AssertionError, the child killed, past ``timeout`` seconds.
    """
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=stderr, cwd=cwd, env=dict(env)
    )
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed its end of the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            proc.wait(timeout=60)
            raise AssertionError(f"{' '.join(argv)} ran past {timeout:.0f}s")
        returncode = proc.wait(timeout=60)
    finally:
        os.close(leader)
    return returncode, bytes(out)
