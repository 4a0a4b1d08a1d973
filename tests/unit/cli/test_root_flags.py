"""`-q`/`-v` belong to the root command but work anywhere before `--`, as people type them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import typer

from restlake.cli.main import _ROOT_FLAGS, app, hoist_root_flags

REPO = Path(__file__).resolve().parents[3]


def test_root_flags_move_in_front_and_nothing_after_the_separator_does() -> None:
    assert hoist_root_flags(["run", "-f", "s.yaml", "-q"]) == ["-q", "run", "-f", "s.yaml"]
    assert hoist_root_flags(["-v", "status"]) == ["-v", "status"]
    assert hoist_root_flags(["stack", "up", "--verbose"]) == ["--verbose", "stack", "up"]
    assert hoist_root_flags(["backfill", "--", "-q"]) == ["backfill", "--", "-q"]
    assert hoist_root_flags([]) == []


def _commands(command: click.Command, path: str = "restlake") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _commands(sub, f"{path} {name}")
    return found


def test_no_sub_command_has_a_flag_of_the_roots_name() -> None:
    root = typer.main.get_command(app)
    clashes = [
        (path, opt)
        for path, command in _commands(root)[1:]
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt in _ROOT_FLAGS
    ]
    assert clashes == []


def _restlake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "restlake.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_a_root_flag_after_the_sub_command_reaches_the_root() -> None:
    source = str(REPO / "examples" / "demo-cursor.yaml")
    quiet = _restlake("validate", "-f", source, "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert "demo-cursor" in quiet.stdout
    # Both at the end: the root's own check refuses them, so both got there.
    both = _restlake("validate", "-f", source, "-q", "-v")
    assert both.returncode != 0
    assert "--verbose and --quiet contradict each other" in both.stderr
