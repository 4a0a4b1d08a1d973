"""The stream job: one source's Kafka topic → quarantine, bronze Delta and Postgres, exactly once.

Run on a cluster as ``python -m restlake.jobs.spark.stream --config job.json``; the JSON holds a
``StreamJobConfig`` (``pg_dsn`` may be left out and read from RESTLAKE_PG_DSN).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from restlake.jobs.spark import bronze
from restlake.jobs.spark.batch import BatchProcessor, StreamMetrics
from restlake.jobs.spark.config import StreamJobConfig
from restlake.jobs.spark.session import build_spark
from restlake.postgres import migrations

log = logging.getLogger(__name__)

__all__ = ["StreamJobConfig", "StreamSummary", "main", "run_stream", "run_until_caught_up"]


@dataclass(frozen=True)
class StreamSummary:
    """What one ``run_until_caught_up`` did."""

    batches: int
    rows_read: int
    bronze_written: int
    quarantined: int
    merged: int
    pg_inserted: int
    pg_updated: int
    pg_replayed_batches: int
    duration_s: float


def read_kafka(spark: SparkSession, config: StreamJobConfig) -> DataFrame:
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", config.kafka_bootstrap)
        .option("subscribe", config.topic)
        .option("startingOffsets", config.starting_offsets)
        # Offsets deleted by retention before we read them are data loss: stop, don't skip.
        .option("failOnDataLoss", "true")
    )
    if config.max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(config.max_offsets_per_trigger))
    return reader.load()


def prepare(spark: SparkSession, config: StreamJobConfig) -> None:
    """Create what the job writes to, idempotently: Postgres migrations and table, Delta tables."""
    migrations.apply(config.pg_dsn)
    migrations.ensure_table(config.pg_dsn, config.table)
    bronze.ensure_table(spark, config.bronze_path, bronze.BRONZE_SCHEMA)
    bronze.ensure_table(spark, config.quarantine_path, bronze.QUARANTINE_SCHEMA)


def _start(
    spark: SparkSession, config: StreamJobConfig, metrics: StreamMetrics | None
) -> tuple[StreamingQuery, BatchProcessor]:
    prepare(spark, config)
    processor = BatchProcessor(config, metrics)
    writer = (
        read_kafka(spark, config)
        .writeStream.queryName(f"restlake-{config.source}")
        .option("checkpointLocation", config.checkpoint_path)
        .foreachBatch(processor)
    )
    if config.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=config.processing_time)
    query = writer.start()
    log.info(
        "stream started source=%s topic=%s query_id=%s run_id=%s available_now=%s",
        config.source,
        config.topic,
        query.id,
        query.runId,
        config.available_now,
    )
    return query, processor


def run_stream(
    spark: SparkSession, config: StreamJobConfig, *, metrics: StreamMetrics | None = None
) -> StreamingQuery:
    """Start the query and return it running; ``metrics``, when given, is updated after each batch."""
    query, _ = _start(spark, config, metrics)
    return query


def run_until_caught_up(spark: SparkSession, config: StreamJobConfig) -> StreamSummary:
    """Process everything in the topic now (availableNow trigger), stop, and say what was done.

    A failed batch re-raises the batch function's own error (TransientError, PermanentError, …)
    rather than Spark's wrapper of it.
    """
    started = time.monotonic()
    metrics = StreamMetrics()
    query, processor = _start(spark, config.model_copy(update={"available_now": True}), metrics)
    try:
        query.awaitTermination()
    except StreamingQueryException:
        if processor.failure is not None:
            raise processor.failure from None
        raise
    m = metrics.snapshot()
    summary = StreamSummary(
        batches=int(m["batches"] or 0),
        rows_read=int(m["rows_read"] or 0),
        bronze_written=int(m["bronze_written"] or 0),
        quarantined=int(m["quarantined"] or 0),
        merged=int(m["pg_inserted"] or 0) + int(m["pg_updated"] or 0),
        pg_inserted=int(m["pg_inserted"] or 0),
        pg_updated=int(m["pg_updated"] or 0),
        pg_replayed_batches=int(m["pg_replayed_batches"] or 0),
        duration_s=time.monotonic() - started,
    )
    log.info("stream caught up source=%s summary=%s", config.source, summary)
    return summary


def _wait(query: StreamingQuery, stop: threading.Event) -> None:
    # Poll instead of one blocking awaitTermination: the signal handler only sets an event, and
    # query.stop() runs here, never re-entering a Py4J call from inside a signal handler.
    while query.isActive and not stop.is_set():
        query.awaitTermination(1)
    if stop.is_set() and query.isActive:
        log.info("stopping query on signal query_id=%s", query.id)
        query.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restlake.jobs.spark.stream", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="JSON file holding a StreamJobConfig.")
    parser.add_argument(
        "--jars",
        default=os.environ.get("RESTLAKE_SPARK_JARS", ""),
        help=f"Connector jars, separated by {os.pathsep!r} (RESTLAKE_SPARK_JARS); empty when spark-submit "
        "or the image provides them.",
    )
    parser.add_argument("--master", default=os.environ.get("RESTLAKE_SPARK_MASTER", "local[2]"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    config = StreamJobConfig.from_file(args.config)
    jars = [Path(p) for p in args.jars.split(os.pathsep) if p]
    spark = build_spark(f"restlake-stream-{config.source}", jars=jars, master=args.master)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received signum=%s source=%s", signum, config.source)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        query, processor = _start(spark, config, None)
        try:
            _wait(query, stop)
        except StreamingQueryException:
            log.error("stream failed source=%s error=%s", config.source, processor.failure or "see Spark log")
            return 1
        if processor.failure is not None:
            log.error("stream failed source=%s error=%s", config.source, processor.failure)
            return 1
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    raise SystemExit(main())
