"""`restlake stack up|down|status|env|jars`: the local Kafka (KRaft) + Postgres stack.

stdout carries only machine-readable output (the env lines, the status table or JSON), so
``eval "$(restlake stack env)"`` exports the endpoints to the shell and its children; logs go to stderr.
"""

from __future__ import annotations

import json
import os
import shlex
from enum import StrEnum
from pathlib import Path

import typer

from restlake.errors import StackError
from restlake.stack import jars
from restlake.stack.manager import LocalStack, StackEndpoints

app = typer.Typer(no_args_is_help=True)

_STATE_OPTION = typer.Option(
    None, "--state-dir", help="State folder (default: RESTLAKE_STATE_DIR or ./.restlake).", show_default=False
)


def _fail(exc: StackError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


class EnvFormat(StrEnum):
    """How the endpoint variables are printed."""

    # `export NAME=value`: `eval "$(restlake stack env)"` hands them to every child process.
    SHELL = "shell"
    # Bare `NAME=value`, for `--env-file`, `set -a; . file` and other dotenv readers.
    DOTENV = "dotenv"


_FORMAT_OPTION = typer.Option(
    EnvFormat.SHELL,
    "--format",
    help="shell: `export NAME=value` lines for eval; dotenv: bare NAME=value lines for env files.",
)


def env_lines(endpoints: StackEndpoints, fmt: EnvFormat = EnvFormat.SHELL) -> list[str]:
    """One line per variable, values shell-quoted only when they need it (both forms parse in sh)."""
    prefix = "export " if fmt is EnvFormat.SHELL else ""
    return [f"{prefix}{name}={shlex.quote(value)}" for name, value in endpoints.env().items()]


@app.command()
def up(state_dir: Path | None = _STATE_OPTION, fmt: EnvFormat = _FORMAT_OPTION) -> None:
    """Start Kafka and Postgres (reusing running ones) and print the env lines."""
    try:
        endpoints = LocalStack(state_dir).up()
    except StackError as exc:
        raise _fail(exc) from exc
    typer.echo("\n".join(env_lines(endpoints, fmt)))


@app.command()
def down(
    state_dir: Path | None = _STATE_OPTION,
    purge: bool = typer.Option(
        False, "--purge", help="Also delete service data, the lake and the state file."
    ),
) -> None:
    """Stop every service the stack started and wait for them to exit."""
    try:
        LocalStack(state_dir).down(purge=purge)
    except StackError as exc:
        raise _fail(exc) from exc


@app.command()
def status(
    state_dir: Path | None = _STATE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show each service: running, pid, port, log file. Exit 1 if any is not running."""
    try:
        statuses = LocalStack(state_dir).status()
    except StackError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps({name: s.as_dict() for name, s in statuses.items()}, indent=2))
    else:
        rows = [("SERVICE", "RUNNING", "PID", "PORT", "LOG")]
        for s in statuses.values():
            rows.append(
                (
                    s.name,
                    "yes" if s.running else "no",
                    "-" if s.pid is None else str(s.pid),
                    "-" if s.port is None else str(s.port),
                    "-" if s.log is None else str(s.log),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if not all(s.running for s in statuses.values()):
        raise typer.Exit(code=1)


@app.command()
def env(state_dir: Path | None = _STATE_OPTION, fmt: EnvFormat = _FORMAT_OPTION) -> None:
    """Print `export` lines for RESTLAKE_KAFKA_BOOTSTRAP, RESTLAKE_PG_DSN, RESTLAKE_LAKE_ROOT (for eval)."""
    stack = LocalStack(state_dir)
    try:
        endpoints = stack.endpoints()
    except StackError as exc:
        raise _fail(exc) from exc
    if endpoints is None:
        typer.echo(
            f"error: the stack is not up (no running stack recorded in {stack.paths.state_file}); "
            "run `restlake stack up`",
            err=True,
        )
        raise typer.Exit(code=1)
    stopped = [name for name, s in stack.status().items() if not s.running]
    if stopped:
        typer.echo(f"warning: recorded as up, but not running: {', '.join(stopped)}", err=True)
    typer.echo("\n".join(env_lines(endpoints, fmt)))


@app.command("jars")
def jars_command(
    state_dir: Path | None = _STATE_OPTION,
    force: bool = typer.Option(False, "--force", help="Resolve again even if the cache is current."),
    openlineage: bool = typer.Option(
        False,
        "--openlineage",
        help="Also resolve the OpenLineage Spark listener (for RESTLAKE_LINEAGE_SPARK_LISTENER=true).",
    ),
    classpath: bool = typer.Option(
        False,
        "--classpath",
        help="Print only the Spark session's jars, separated for RESTLAKE_SPARK_JARS (as `python -m "
        "restlake.jobs.spark.bronze_range` and the stream job read them).",
    ),
) -> None:
    """Resolve the Kafka and Spark jars from Maven into the jar cache (skipped when current)."""
    stack = LocalStack(state_dir)
    try:
        resolved = jars.resolve_all(stack.paths.jars, force=force)
        if openlineage:
            resolved["openlineage"] = jars.resolve("openlineage", stack.paths.jars, force=force)
        if classpath:
            typer.echo(os.pathsep.join(str(jar) for jar in jars.spark_jars(jars_dir=stack.paths.jars)))
            return
    except StackError as exc:
        raise _fail(exc) from exc
    for name, paths in resolved.items():
        typer.echo(f"{name}: {len(paths)} jars in {stack.paths.jars / name}")
