"""Run a `restlake` command with its stdout on a pseudo-terminal, as a person at a terminal sees it."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..ptyreader import run_on_pty

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
    err_file = cwd / f"stderr-{time.monotonic_ns()}.log"
    with err_file.open("wb") as err:
        returncode, out = run_on_pty(
            [sys.executable, "-m", "restlake.cli.main", *args],
            env={**env, "COLUMNS": str(columns), "TERM": "xterm"},
            stderr=err,
            cwd=cwd,
            timeout=timeout,
        )
    return Screen(returncode, out.decode("utf-8", "replace"), err_file.read_text(errors="replace"))


def cells(line: str) -> list[str]:
    """A table line split into its cells (cells hold no spaces)."""
    return line.split()
