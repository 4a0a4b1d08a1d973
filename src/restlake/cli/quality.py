"""`restlake quality run`: the bronze checkpoint (Great Expectations) of one source, once.

Exit codes: 0 every expectation passed, 1 an expectation failed, 2 bad input (spec, settings,
no bronze table). The JSON summary goes to stdout, logs to stderr.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from restlake.cli import components
from restlake.errors import RestlakeError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


@app.command("run")
def run(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML."),
    source_name: str | None = typer.Option(
        None, "--source", help="Source to validate when the file holds several (default: the only one)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Validate all of the source's bronze rows, not only those since the last run."
    ),
    master: str = typer.Option("local[2]", help="Spark master: local[N] or spark://host:port."),
) -> None:
    """Validate a source's bronze rows with Great Expectations; prints a JSON summary."""
    components.require("quality run", "restlake.jobs.spark")
    from restlake.cli.source_choice import one_source
    from restlake.cli.spark_settings import lake_spark
    from restlake.quality.checkpoint import run_checkpoint
    from restlake.quality.suite import build_suite
    from restlake.runtime.pod_reporters import report_quality
    from restlake.settings import LakeSettings

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # GX logs its own bookkeeping (config saves, decorator registration) at INFO, hundreds of lines.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        source = one_source(file, source_name)
        # Before Spark starts (10-20 s): a bad bronze expectation is reported at once.
        build_suite(source)
        lake_root = LakeSettings().root
        bronze = source.bronze_path(lake_root)
        spark = lake_spark("quality", source.name, storage=bronze, master=master)
        result = run_checkpoint(spark, source, lake_root=lake_root, full=full)
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    # In the operator's CronJob pod this sets the source's QualityPassing condition; locally a no-op.
    report_quality(
        passed=result.passed,
        evaluated=len(result.outcomes),
        unsuccessful=len(result.failed),
        detail="" if result.passed else result.message,
    )
    typer.echo(json.dumps(result.summary(), sort_keys=True))
    raise typer.Exit(0 if result.passed else 1)
