"""`restlake backfill`: replay one source into Postgres, idempotently, from Kafka or from bronze.

Kafka: ``--from-time``/``--from-offsets`` [``--to-time``/``--to-offsets``]. Bronze:
``--from-version N`` [``--to-version M``] (the rows versions N..M appended) or ``--as-of V|TIME``
(every row of one snapshot). At a terminal a live progress bar shows rows merged, rate and time
left; stdout otherwise carries only the JSON summary.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from restlake.cli import components
from restlake.cli.progress import rows_bar
from restlake.contracts.stream_job import DEFAULT_MAX_RECORDS_PER_BATCH
from restlake.errors import RestlakeError


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option}: expected an ISO 8601 time, got {value!r}") from None


def backfill(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="IngestionSource YAML."),
    source_name: str | None = typer.Option(
        None, "--source", help="Source to replay when the file holds several (default: the only one)."
    ),
    from_time: str | None = typer.Option(
        None, "--from-time", help="Replay records whose Kafka timestamp is at or after this ISO 8601 time."
    ),
    from_offsets: str | None = typer.Option(
        None, "--from-offsets", help="Replay from these offsets: partition:offset[,…]; others from earliest."
    ),
    to_time: str | None = typer.Option(None, "--to-time", help="Stop before this ISO 8601 time."),
    to_offsets: str | None = typer.Option(
        None, "--to-offsets", help="Stop before these offsets (exclusive): partition:offset[,…]."
    ),
    from_version: int | None = typer.Option(
        None,
        "--from-version",
        min=0,
        help="Bronze: re-merge the rows that table versions from here to --to-version appended.",
    ),
    to_version: int | None = typer.Option(
        None,
        "--to-version",
        min=0,
        help="Bronze: last table version of the range, inclusive (default: latest).",
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Bronze: re-merge every row of the table as of this version or ISO 8601 time (time travel).",
    ),
    run_id: str | None = typer.Option(None, help="Ledger id of this run (default: random); reuse to resume."),
    chunk_rows: int = typer.Option(
        DEFAULT_MAX_RECORDS_PER_BATCH,
        min=1,
        help="Rows per merge transaction at most (one record's versions share one).",
    ),
    master: str = typer.Option("local[2]", help="Spark master: local[N] or spark://host:port."),
) -> None:
    """Re-merge a source's Kafka range or bronze versions into Postgres; prints a JSON summary."""
    components.require("backfill", "restlake.jobs.spark")
    from restlake.cli.source_choice import one_source
    from restlake.cli.spark_settings import command_spark_settings
    from restlake.jobs.spark.backfill import KafkaRange, config_for, parse_offsets, replay_range, run_backfill
    from restlake.jobs.spark.bronze_range import parse_as_of
    from restlake.jobs.spark.session import build_spark
    from restlake.jobs.spark.stream import spark_conf_for
    from restlake.runtime.pod_reporters import BackfillProgressReporter, write_termination_message
    from restlake.settings import KafkaSettings, LakeSettings, PostgresSettings, StackSettings
    from restlake.stack.jars import spark_jars

    try:
        source = one_source(file, source_name)
        replay = replay_range(
            from_time=_when(from_time, "--from-time"),
            from_offsets=parse_offsets(from_offsets, option="--from-offsets") if from_offsets else None,
            to_time=_when(to_time, "--to-time"),
            to_offsets=parse_offsets(to_offsets, option="--to-offsets") if to_offsets else None,
            from_version=from_version,
            to_version=to_version,
            as_of=parse_as_of(as_of) if as_of is not None else None,
        )
        kafka = KafkaSettings()
        cfg = config_for(
            source,
            kafka_bootstrap=kafka.bootstrap,
            topic=source.topic(kafka.topic_prefix),
            pg_dsn=PostgresSettings().dsn.get_secret_value(),
            lake_root=LakeSettings().root,
        )
        spark = build_spark(
            f"restlake-backfill-{source.name}",
            jars=spark_jars(StackSettings().state_dir),
            master=master,
            extra_conf=spark_conf_for(cfg, []),
            settings=command_spark_settings(),
        )
        origin = "kafka" if isinstance(replay, KafkaRange) else "bronze"
        # In a Backfill's Job pod (operator-rendered env), progress also goes to the Backfill's status.
        reporter = BackfillProgressReporter.from_environment()
        with rows_bar(f"backfill {source.name} ({origin})") as bar:

            def progress(done: int, total: int) -> None:
                bar(done, total)
                if reporter is not None:
                    reporter(done, total)

            summary = run_backfill(
                spark, cfg, replay, run_id=run_id, chunk_rows=chunk_rows, progress=progress
            )
    except RestlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    result = summary.as_dict()
    if reporter is not None:
        reporter.finish(result)
    write_termination_message(result)
    typer.echo(json.dumps(result, sort_keys=True))
