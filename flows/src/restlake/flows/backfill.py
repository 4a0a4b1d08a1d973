"""The ``restlake-backfill`` flow: ``restlake backfill`` of one source, its options as parameters.

The ledger id of the run defaults to the flow run's id, so a retry of the flow resumes: chunks the
failed attempt merged are found in the ledger and skipped. Progress goes to the run's log after
every chunk. Lineage: one run of job ``restlake.backfill.<source>``, input the topic or the bronze
table, output the Postgres table with the rows the merge wrote.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from restlake.errors import RestlakeError
from restlake.flows.session import load_named_source, spark_for
from restlake.lineage.datasets import BRONZE_FIELDS, POSTGRES_FIELDS, delta_table, kafka_topic, postgres_table
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.runs import JobRun

TIMEOUT_S = 6 * 3600


def backfill_job_name(source: str) -> str:
    return f"restlake.backfill.{source}"


@flow(
    name="restlake-backfill",
    flow_run_name="backfill-{source}",
    retries=2,
    retry_delay_seconds=120,
    timeout_seconds=TIMEOUT_S,
)
def backfill_flow(
    file: str,
    source: str,
    from_time: datetime | None = None,
    from_offsets: str | None = None,
    to_time: datetime | None = None,
    to_offsets: str | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    as_of: str | None = None,
    run_id: str | None = None,
    chunk_rows: int = 10_000,
    master: str = "local[2]",
) -> dict[str, Any]:
    """Re-merge a Kafka range or bronze versions of the source into Postgres; returns the summary."""
    from restlake.jobs.spark.backfill import KafkaRange, config_for, parse_offsets, replay_range, run_backfill
    from restlake.jobs.spark.bronze_range import parse_as_of
    from restlake.settings import KafkaSettings, LakeSettings, PostgresSettings

    logger = get_run_logger()
    spec = load_named_source(file, source)
    replay = replay_range(
        from_time=from_time,
        from_offsets=parse_offsets(from_offsets, option="--from-offsets") if from_offsets else None,
        to_time=to_time,
        to_offsets=parse_offsets(to_offsets, option="--to-offsets") if to_offsets else None,
        from_version=from_version,
        to_version=to_version,
        as_of=parse_as_of(as_of) if as_of is not None else None,
    )
    kafka = KafkaSettings()
    lake_root = LakeSettings().root
    pg_dsn = PostgresSettings().dsn.get_secret_value()
    cfg = config_for(
        spec,
        kafka_bootstrap=kafka.bootstrap,
        topic=spec.topic(kafka.topic_prefix),
        pg_dsn=pg_dsn,
        lake_root=lake_root,
    )
    origin = "kafka" if isinstance(replay, KafkaRange) else "bronze"
    read = (
        kafka_topic(cfg.kafka_bootstrap, cfg.topic or "", BRONZE_FIELDS)
        if origin == "kafka"
        else delta_table(cfg.bronze_path, BRONZE_FIELDS)
    )
    lineage = JobRun(
        LineageEmitter.from_settings(),
        backfill_job_name(spec.identity),
        inputs=[read],
        outputs={"postgres": postgres_table(pg_dsn, cfg.pg_table, POSTGRES_FIELDS)},
    )
    ledger_id = run_id or str(flow_run.get_id() or "") or None

    def progress(done: int, total: int) -> None:
        share = f" ({100 * done / total:.0f}%)" if total else ""
        logger.info("backfill %s (%s): %s of %s rows merged%s", spec.name, origin, done, total, share)

    lineage.start()
    try:
        spark = spark_for("backfill", spec, lake_root=lake_root, master=master)
        summary = run_backfill(spark, cfg, replay, run_id=ledger_id, chunk_rows=chunk_rows, progress=progress)
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}" if isinstance(exc, RestlakeError) else type(exc).__name__)
        raise
    lineage.complete({"postgres": summary.inserted + summary.updated})
    result = summary.as_dict()
    logger.info(
        "backfill %s done: %s rows read, %s inserted, %s updated, %s unchanged in %ss",
        spec.name,
        summary.rows_read,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.duration_s,
    )
    return result
