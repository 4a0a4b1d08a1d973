"""The `restlake` command: one entry point, one sub-command group per component."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer

from restlake.cli import (
    backfill,
    demoapi,
    fetcher,
    flows,
    maintenance,
    operator,
    progress,
    quality,
    run,
    snowflake,
    stack,
    status,
    validate,
)
from restlake.redaction import redact_log_handlers
from restlake.settings import LogSettings

app = typer.Typer(
    name="restlake",
    help="Ingest REST APIs into a Delta lake and Postgres, exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack", help="Manage the local stack: Kafka (KRaft), Postgres, Spark jars.")
app.add_typer(fetcher.app, name="fetcher", help="Poll REST APIs into Kafka (fetch state in Postgres).")
app.add_typer(operator.app, name="operator", help="Run the Kubernetes operator (kopf).")
app.add_typer(demoapi.app, name="demo-api", help="Run the bundled demo REST API.")
app.add_typer(quality.app, name="quality", help="Validate the bronze table with Great Expectations.")
app.add_typer(
    flows.app, name="flows", help="Serve the sources' flows with Prefect (maintenance, quality, backfill)."
)
app.add_typer(
    maintenance.app, name="maintenance", help="OPTIMIZE and VACUUM a source's lake tables, prune its ledger."
)
app.add_typer(
    snowflake.app,
    name="snowflake",
    help="Load a source's bronze table into Snowflake (spec.sinks.snowflake).",
)
app.command("validate")(validate.validate)
app.command("run")(run.run)
app.command("demo")(run.demo)
app.command("backfill")(backfill.backfill)
app.command("status")(status.status)


@app.callback()
def _configure(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Only warnings and errors, no live progress; results still print."
    ),
) -> None:
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet contradict each other; pick one")
    progress.MODE.quiet, progress.MODE.verbose = quiet, verbose
    if verbose:
        level = logging.DEBUG
    elif quiet:
        # The Spark JVM follows in the commands that build a session (cli.spark_settings).
        level = logging.WARNING
    else:
        level = getattr(logging, LogSettings().log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact_log_handlers()


# The root command's flags, which people type at the end as often as at the start
# (`restlake run -f source.yaml -q`); click reads an option only at its own level.
_ROOT_FLAGS = frozenset({"-q", "--quiet", "-v", "--verbose"})


def hoist_root_flags(args: Sequence[str]) -> list[str]:
    """``args`` with the root flags moved in front of the sub-command; nothing after ``--`` moves.

    No sub-command has a ``-q`` or ``-v`` of its own (a unit test keeps it so), so a flag anywhere
    before ``--`` can only mean the root's.
    """
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in _ROOT_FLAGS]
    return flags + [a for a in args[:end] if a not in _ROOT_FLAGS] + args[end:]


def main() -> None:
    """The ``restlake`` console script."""
    app(args=hoist_root_flags(sys.argv[1:]), prog_name="restlake")


if __name__ == "__main__":
    main()
