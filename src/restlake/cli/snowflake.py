"""`restlake snowflake sync`: load the bronze versions one source's Snowflake ledger lacks.

Settings come from the source's ``spec.sinks.snowflake`` (credentials from its Secret references:
``RESTLAKE_SECRET_<NAME>_<KEY>`` locally, the mounted Secret in a pod). Exit codes: 0 done, 2 bad
input (spec, a missing Secret, a refused sign-in), 3 Snowflake unreachable (worth a retry). The
JSON summary goes to stdout, logs to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from restlake.cli import components
from restlake.errors import RestlakeError, TransientError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


@app.command("sync")
def sync(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML."),
    source_name: str | None = typer.Option(
        None, "--source", help="Source to sync when the file holds several (default: the only one)."
    ),
    master: str = typer.Option("local[2]", help="Spark master: local[N] or spark://host:port."),
) -> None:
    """Merge the source's new bronze versions into its Snowflake table; prints a JSON summary."""
    components.require("snowflake sync", "restlake.jobs.spark")
    from restlake.cli.source_choice import one_source
    from restlake.cli.spark_settings import lake_spark
    from restlake.contracts.snowflake_sync import SnowflakeSyncConfig
    from restlake.jobs.spark.snowflake_sync import sync as run_sync
    from restlake.settings import LakeSettings

    try:
        source = one_source(file, source_name)
        lake_root = LakeSettings().root
        cfg = SnowflakeSyncConfig.for_source(source, lake_root=lake_root)
        spark = lake_spark("snowflake", source.name, storage=lake_root, master=master)
        summary = run_sync(spark, cfg)
    except TransientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(summary.as_dict(), sort_keys=True))
