"""`restlake maintenance run`: OPTIMIZE and VACUUM one source's lake tables, prune its batch ledger.

Settings come from the source's ``spec.maintenance`` (defaults when absent). Exit codes: 0 done,
2 bad input (spec, settings, a retention that would undercut time travel). The JSON summary, with
file counts, bytes and point-query times before and after, goes to stdout, logs to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from restlake.cli import components
from restlake.errors import RestlakeError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


@app.command("run")
def run(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML."),
    source_name: str | None = typer.Option(
        None, "--source", help="Source to maintain when the file holds several (default: the only one)."
    ),
    time_queries: bool = typer.Option(
        True, "--time-queries/--no-time-queries", help="Time a point query by external_id before and after."
    ),
    master: str = typer.Option("local[2]", help="Spark master: local[N] or spark://host:port."),
) -> None:
    """Compact and vacuum a source's bronze and quarantine tables, prune its ledger; prints a JSON summary."""
    components.require("maintenance run", "restlake.jobs.spark")
    from restlake.cli.source_choice import one_source
    from restlake.cli.spark_settings import lake_spark
    from restlake.jobs.spark.maintenance import MaintenanceTarget, run_maintenance
    from restlake.settings import LakeSettings, PostgresSettings

    try:
        source = one_source(file, source_name)
        lake_root = LakeSettings().root
        target = MaintenanceTarget.for_source(source, lake_root=lake_root, pg_dsn=PostgresSettings().dsn)
        spark = lake_spark("maintenance", source.name, storage=lake_root, master=master)
        summary = run_maintenance(spark, target, time_queries=time_queries)
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(summary.as_dict(), sort_keys=True))
