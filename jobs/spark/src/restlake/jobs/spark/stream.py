"""The stream job: one source's Kafka topic → quarantine, bronze Delta and Postgres, exactly once.

Run on a cluster as ``python -m restlake.jobs.spark.stream --config job.json``; the JSON holds a
``StreamJobConfig`` (``pg_dsn`` may be left out and read from RESTLAKE_PG_DSN). Exit codes: 0 after
catching up (availableNow) or a graceful stop on SIGTERM/SIGINT, 1 when the query failed, 2 when a
setting is missing or bad (the message names it).

Faults, and what the job does about them:

- Postgres down or restarting: the merge retries with backoff (1+2+4+8+15 s); longer than that, the
  batch fails, the query stops, and a restart replays it from the checkpoint (ledger: no doubles).
- Broker down or restarting: the Kafka consumer and the driver's offset fetches wait and retry
  (Kafka client reconnects; Spark retries offset requests), so a broker back within the client
  timeouts is invisible; a longer outage fails the query and a restart resumes from the checkpoint.
- Offsets lost before they were read (retention, a recreated topic): ``fail_on_data_loss`` (on by
  default) stops the query rather than skipping records silently.
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

from restlake.contracts.stream_job import StreamJobConfig
from restlake.errors import ConfigError
from restlake.jobs.spark import metrics as prom
from restlake.jobs.spark import ops
from restlake.jobs.spark.batch import BatchProcessor, StreamMetrics
from restlake.jobs.spark.session import build_spark
from restlake.jobs.spark.settings import SparkSettings, classpath_jars
from restlake.jobs.spark.sinks import Stopwatch
from restlake.postgres import migrations
from restlake.redaction import redact_log_handlers

log = logging.getLogger(__name__)

__all__ = ["CatchUp", "StreamJobConfig", "StreamSummary", "main", "run_stream", "run_until_caught_up"]

# The trigger of a query that streams a topic while a fetch pass is still filling it: short, so that
# records land while the pass runs and batches grow to what arrived during the last one; not zero,
# so that an idle topic is checked every few seconds rather than in a busy loop.
CATCH_UP_INTERVAL = "2 seconds"


@dataclass(frozen=True)
class StreamSummary:
    """What one ``run_until_caught_up`` did."""

    batches: int
    rows_read: int
    bronze_written: int
    quarantined: int
    dropped: int
    merged: int
    pg_inserted: int
    pg_updated: int
    pg_replayed_batches: int
    duration_s: float


# A Spark task holds its partition's rows more than once (cached column batches, Arrow for the
# Postgres collect, Parquet for bronze), and a Kafka partition is one Spark partition unless split:
# 50,000 records of 7 KB were 350 MB in one task and killed the driver. Split there, a task's share
# stays bounded whatever the batch cap.
MAX_RECORDS_PER_TASK = 10_000
# How long the broker may hold a fetch that finds no new record (the consumer's fetch.max.wait.ms,
# 500 ms by default). A micro-batch reads only offsets that exist, yet its first read could wait
# out a fetch the consumer had sent ahead after the previous batch, held by the broker while the
# partition had nothing newer: at 1,000 events/s the same 1,000-record batch read Kafka in 0.09 to
# 0.67 s (median 0.37 s), and latency was p50 1.6 s; with 20 ms, 0.14 s and p50 1.1 s (`make bench`,
# end to end). A shorter wait costs an empty fetch response more often, only while a task reads.
FETCH_MAX_WAIT_MS = 20


def kafka_options(config: StreamJobConfig) -> dict[str, str]:
    """The Kafka source's options for ``config``'s topic (Spark's ``kafka.*`` go to the consumer)."""
    options = {
        "kafka.bootstrap.servers": config.kafka_bootstrap,
        "startingOffsets": config.starting_offsets,
        # Offsets deleted by retention before we read them are data loss: stop, don't skip.
        "failOnDataLoss": str(config.fail_on_data_loss).lower(),
        "kafka.fetch.max.wait.ms": str(FETCH_MAX_WAIT_MS),
        "maxRecordsPerPartition": str(MAX_RECORDS_PER_TASK),
    }
    if config.topic_pattern is not None:
        options["subscribePattern"] = config.topic_pattern
    elif config.topic is not None:  # the config holds exactly one of them
        options["subscribe"] = config.topic
    if config.max_message_bytes > 1024 * 1024:
        # The consumer returns a record larger than its fetch size alone, but sizes its
        # requests by it; raise it with the cap so big records do not cost a fetch each.
        options["kafka.max.partition.fetch.bytes"] = str(config.max_message_bytes + 65536)
    if config.max_offsets_per_trigger is not None:
        options["maxOffsetsPerTrigger"] = str(config.max_offsets_per_trigger)
    return options


def read_kafka(spark: SparkSession, config: StreamJobConfig) -> DataFrame:
    return spark.readStream.format("kafka").options(**kafka_options(config)).load()


def _start(
    spark: SparkSession, config: StreamJobConfig, metrics: StreamMetrics | None
) -> tuple[StreamingQuery, BatchProcessor]:
    prom.init_source(config.source, config.quality)
    processor = BatchProcessor(config, metrics)
    # Laps of the start, logged: a restarted driver's way back is this plus its first batch.
    watch = Stopwatch()
    # Once, before any sink: the batch and key ledgers live in Postgres whichever sinks are on.
    migrations.apply(config.pg_dsn)
    watch.lap("migrations")
    # Before the query: each sink creates what it writes; a first run against a bronze table
    # written before the key ledger copies its keys (a one-off scan of the source's history) here
    # rather than inside the first micro-batch.
    for sink in processor.sinks:
        sink.prepare(spark)
        watch.lap(sink.name)
    writer = (
        processor.validated(read_kafka(spark, config))
        .writeStream.queryName(f"restlake-{config.source}")
        .option("checkpointLocation", config.checkpoint_path)
        .foreachBatch(processor)
    )
    if config.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=config.processing_time)
    query = writer.start()
    watch.lap("query")
    prom.ProgressMetrics(config.source, query).start()
    log.info(
        "stream started source=%s topic=%s query_id=%s run_id=%s available_now=%s steps=%s",
        config.source,
        config.subscription,
        query.id,
        query.runId,
        config.available_now,
        " ".join(f"{name}:{seconds:.2f}" for name, seconds in watch.laps),
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
    return _summary(config.source, metrics, started)


class CatchUp:
    """A query started while the topic is still being filled, finished once the filling is done.

    ``restlake run --until-caught-up`` starts it beside the fetch pass, so that the Spark start and
    the first batches overlap the fetch instead of following it; ``finish`` then processes what
    the topic holds and stops. The same exactly-once path as any query: only the trigger differs.
    """

    def __init__(self, spark: SparkSession, config: StreamJobConfig) -> None:
        self.source = config.source
        self.metrics = StreamMetrics()
        self.started = time.monotonic()
        update = {"available_now": False, "processing_time": CATCH_UP_INTERVAL}
        self.query, self.processor = _start(spark, config.model_copy(update=update), self.metrics)

    def finish(self) -> StreamSummary:
        """Process every record in the topic now (nothing may still be producing to it), then stop."""
        try:
            self.query.processAllAvailable()
        except StreamingQueryException:
            if self.processor.failure is not None:
                raise self.processor.failure from None
            raise
        finally:
            self.query.stop()
        return _summary(self.source, self.metrics, self.started)

    def abandon(self) -> None:
        """Stop without waiting for the topic's end (the fetch failed); what was committed stays."""
        self.query.stop()


def _summary(source: str, metrics: StreamMetrics, started: float) -> StreamSummary:
    m = metrics.snapshot()
    summary = StreamSummary(
        batches=int(m["batches"] or 0),
        rows_read=int(m["rows_read"] or 0),
        bronze_written=int(m["bronze_written"] or 0),
        quarantined=int(m["quarantined"] or 0),
        dropped=int(m["dropped"] or 0),
        merged=int(m["pg_inserted"] or 0) + int(m["pg_updated"] or 0),
        pg_inserted=int(m["pg_inserted"] or 0),
        pg_updated=int(m["pg_updated"] or 0),
        pg_replayed_batches=int(m["pg_replayed_batches"] or 0),
        duration_s=time.monotonic() - started,
    )
    log.info("stream caught up source=%s summary=%s", source, summary)
    return summary


def executor_count(spark: SparkSession) -> int:
    """Executors registered with the driver (the driver's own block manager is not one)."""
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
    return max(0, int(status.size()) - 1)


def _wait(
    query: StreamingQuery,
    stop: threading.Event,
    health: ops.DriverHealth | None = None,
    spark: SparkSession | None = None,
) -> None:
    # Poll instead of one blocking awaitTermination: the signal handler only sets an event, and
    # query.stop() runs here, never re-entering a Py4J call from inside a signal handler.
    while query.isActive and not stop.is_set():
        if health is not None and spark is not None:
            health.beat(query_active=True, executors=0 if health.local else executor_count(spark))
        query.awaitTermination(1)
    if health is not None:
        health.beat(query_active=False, executors=0)
    if stop.is_set() and query.isActive:
        log.info("stopping query on signal query_id=%s", query.id)
        query.stop()


def spark_conf_for(config: StreamJobConfig, pairs: list[str]) -> dict[str, str]:
    """``--conf`` pairs, plus the s3a settings (RESTLAKE_S3_*) when a path of the job is ``s3a://``."""
    conf: dict[str, str] = {}
    paths = (config.bronze_path, config.quarantine_path, config.checkpoint_path)
    if any(path.startswith("s3a://") for path in paths):
        from restlake.settings import S3Settings

        conf.update(S3Settings().spark_conf())
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {pair!r}: expected KEY=VALUE")
        conf[key.strip()] = value
    return conf


def main(argv: list[str] | None = None) -> int:
    settings = SparkSettings()
    parser = argparse.ArgumentParser(prog="python -m restlake.jobs.spark.stream", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="JSON file holding a StreamJobConfig.")
    parser.add_argument(
        "--jars",
        default=settings.jars,
        help=f"Connector jars, separated by {os.pathsep!r} (RESTLAKE_SPARK_JARS); empty when spark-submit "
        "or the image provides them.",
    )
    parser.add_argument("--master", default=settings.master, help="Spark master URL (RESTLAKE_SPARK_MASTER).")
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra Spark setting, as spark-submit's --conf (e.g. spark.executor.memory=1g); repeatable.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact_log_handlers()

    try:
        config = StreamJobConfig.from_file(args.config)
        jars = classpath_jars(args.jars)
        extra = spark_conf_for(config, args.conf)
        spark = build_spark(
            f"restlake-stream-{config.source}",
            jars=jars,
            master=args.master,
            extra_conf=extra,
            settings=settings,
            records_per_batch=config.max_offsets_per_trigger,
        )
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return 2
    health = ops.DriverHealth(local=args.master.startswith("local"))
    if config.metrics_port is not None:
        ops.serve(health, config.metrics_port, config.metrics_address)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received signum=%s source=%s", signum, config.source)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        query, processor = _start(spark, config, None)
        try:
            _wait(query, stop, health, spark)
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
