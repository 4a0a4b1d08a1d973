"""Run a `restlake` command with its stdout on a pseudo-terminal, as a person at a terminal sees it."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# CSI sequences (cursor moves, erase line, colours, cursor hide/show) and carriage returns.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@dataclass
class Screen:
    returncode: int
    raw: str  # every byte written to the terminal, control sequences included
    stderr: str

    @property
    def text(self) -> str:
        return _CONTROL.sub("", self.raw)

    def last_frame(self, title: str) -> list[str]:
        """Lines of the last frame drawn under ``title`` (the one left on screen), then what followed."""
        text = self.text
        at = text.rfind(title)
        assert at >= 0, f"no frame titled {title!r} in:\n{text}"
        return [line.rstrip() for line in text[at:].splitlines() if line.strip()]


def restlake_on_terminal(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600.0, columns: int = 160
) -> Screen:
    """``restlake ARGS`` with stdout on a pty (stdin closed, stderr to a file), waited for."""
    leader, follower = pty.openpty()
    err_file = cwd / f"stderr-{time.monotonic_ns()}.log"
    with err_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restlake.cli.main", *args],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=err,
            cwd=cwd,
            env={**env, "COLUMNS": str(columns), "TERM": "xterm"},
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
            raise AssertionError(f"restlake {' '.join(args)} ran past {timeout:.0f}s")
        returncode = proc.wait(timeout=60)
    finally:
        os.close(leader)
    return Screen(returncode, out.decode("utf-8", "replace"), err_file.read_text(errors="replace"))


def cells(line: str) -> list[str]:
    """A table line split into its cells (cells hold no spaces)."""
    return line.split()
