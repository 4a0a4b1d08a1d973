"""Build the SparkSession the stream job (and its tests) run in: Delta enabled, small, quiet."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from pyspark import SparkContext
from pyspark.sql import SparkSession

from restlake.contracts.stream_job import DEFAULT_MAX_RECORDS_PER_BATCH
from restlake.errors import PermanentError
from restlake.jobs.spark import class_archive
from restlake.jobs.spark.settings import SparkSettings
from restlake.lineage.settings import LineageSettings
from restlake.lineage.spark_listener import CONSOLE_LOGGER, describe, spark_listener_conf

log = logging.getLogger(__name__)

# Bronze and quarantine columns whose every value is new (see the dictionary setting below).
_ONE_VALUE_PER_RECORD = (
    "external_id",
    "idempotency_key",
    "content_hash",
    "payload",
    "kafka_offset",
    "raw_value",
)

# Every setting here is a default the caller can override through ``extra_conf``.
_BASE_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Micro-batches are small; the default 200 shuffle partitions would mean 200 tiny tasks per stage.
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    # Delta rebuilds table state (for a txnAppId/txnVersion check: the quarantine's appends, the
    # maintenance jobs) with a shuffle of 50 partitions by default: measured 6-16 s per idempotent
    # append on 2 cores, 2-4 s with 2.
    "spark.databricks.delta.snapshotPartitions": "2",
    # The micro-batch is cached once and read two or three times (bronze, Postgres, quarantine)
    # within seconds. Compressing the cache tries encoders on every column, the ~1 KB payload
    # strings included, which rarely shrink: measured 2.0 s of a 5.5 s validation of 100k records
    # on 2 cores, against 0.3 s uncompressed. MEMORY_AND_DISK spills what does not fit.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # Rows per column batch of that cache (Spark's default: 10,000). A batch's buffers are built in
    # memory whole, doubling as they grow, before the block store may spill them: 10,000 records of
    # 7 KB were over 150 MB per column and task, and killed a 2 GiB driver (measured). A thousand
    # keep that at a few MB per column whatever the records' size.
    "spark.sql.inMemoryColumnarStorage.batchSize": "1000",
    # VACUUM lists a table's files in this many tasks (Spark's default is 10,000): measured 85 s for
    # a 10-file table on 2 cores, against 2 s with 8. Sixteen still lists a table of thousands of
    # partition folders in parallel on a cluster.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "16",
    # Off: Delta's auto compaction counts small files in the driver's memory, and a restarted
    # driver's count goes wrong so that it rewrote the partition after every append. The stream
    # job compacts its tables itself (restlake.jobs.spark.compaction), every 50 appends.
    "spark.databricks.delta.autoCompact.enabled": "false",
    # A partitioned write sorts its input by the partition values unless it may keep one writer
    # open per value. A micro-batch nearly always holds one or two (source, ingest_date) values,
    # so the sort only copied ~100 MB of rows per 100k records into sorter pages and back: 9% of
    # the executors' time in a profile of a drain, the append step 1.8-1.9 s against 2.0 s. With
    # up to four writers open a task streams its rows; one that meets a fifth value sorts the
    # rest, as before. A task holds its share of the batch either way (MAX_RECORDS_PER_TASK).
    "spark.sql.maxConcurrentOutputFileWriters": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # ingest_date and every timestamp we write are UTC, whatever the machine's zone.
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    # A micro-batch's DataFrame is tiny; Arrow makes the pandas UDF and toPandas paths cheap.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Parquet tries dictionary encoding on every column until a column's dictionary passes 1 MB,
    # hashing each value into it: for the bronze and quarantine columns that hold one value per
    # record (keys, hashes, offsets, the payload, the raw Kafka value) that never pays, and it was
    # 6% of the stream job's JVM time in a profile of a drain. Those columns are written PLAIN;
    # the others (source, topic, status, batch, times shared by a page) keep their dictionaries.
    **{f"spark.hadoop.parquet.enable.dictionary#{column}": "false" for column in _ONE_VALUE_PER_RECORD},
}


def build_spark(
    app_name: str,
    *,
    jars: list[Path],
    master: str = "local[2]",
    extra_conf: dict[str, str] | None = None,
    lineage: LineageSettings | None = None,
    settings: SparkSettings | None = None,
    records_per_batch: int | None = DEFAULT_MAX_RECORDS_PER_BATCH,
    streams: int = 1,
) -> SparkSession:
    """A SparkSession with Delta Lake and the Kafka source on the classpath.

    ``jars`` are the connector jars (spark-sql-kafka, delta-spark and their dependencies) that
    are not part of the pyspark distribution; the caller resolves them (the local stack caches
    them under its state folder, a cluster image bakes them in and passes an empty list).

    With ``RESTLAKE_LINEAGE_SPARK_LISTENER=true`` (``lineage``, read from the environment when
    None) OpenLineage's Spark listener runs too, sending to restlake's lineage transport.
    ``settings`` (driver memory, log level) are read from the environment when None. A local
    driver's heap, when the settings leave it ``auto``, is sized for ``streams`` queries whose
    micro-batches hold at most ``records_per_batch`` records.
    """
    spark_settings = settings if settings is not None else SparkSettings()
    missing = [str(j) for j in jars if not Path(j).is_file()]
    if missing:
        from restlake.errors import ConfigError

        raise ConfigError(
            f"spark jars not found: {', '.join(missing)} (resolve them with `restlake stack jars`)"
        )
    conf = dict(_BASE_CONF)
    archive: class_archive.ArchivePlan | None = None
    if jars and master.startswith("local"):
        # On the JVM's own classpath: local executors live in the driver's JVM. Through spark.jars
        # every driver start copied the jars (682 MB, AWS's SDK bundle most of it) into a temporary
        # folder at its first task, a cost on the first micro-batch of a restarted driver, and a
        # SIGKILLed driver left the copy behind.
        conf["spark.driver.extraClassPath"] = os.pathsep.join(str(Path(j).absolute()) for j in jars)
    elif jars:
        # A cluster's executors fetch them from the driver.
        conf["spark.jars"] = ",".join(str(Path(j).absolute()) for j in jars)
    if master.startswith("local"):
        _local_worker_environment()
    listener = _lineage_listener(conf, jars, lineage)
    conf.update(listener)
    conf.update(cluster_auth_conf(master, spark_settings))
    if master.startswith("local"):
        # Driver and executors share this heap in local mode. Read when pyspark launches the JVM,
        # so it only applies to the first session of a process.
        conf["spark.driver.memory"] = spark_settings.local_driver_memory(records_per_batch, streams=streams)
        # The throughput collector: a micro-batch is seconds of work, so pauses do not matter, and
        # G1's remembered sets cost ~100 MiB of a 2 GiB heap besides growing it to its maximum
        # (measured with native memory tracking on `restlake run` of 300k records).
        conf["spark.driver.extraJavaOptions"] += " -XX:+UseParallelGC"
        # Only for the process's first session: a later one shares the JVM already running.
        if spark_settings.class_archive and SparkContext._gateway is None:
            archive = class_archive.plan(jars, spark_settings.class_archive_dir)
            if archive.java_options:
                conf["spark.driver.extraJavaOptions"] += " " + archive.java_options
    conf.update(extra_conf or {})

    # py4j logs at INFO from its connections' __del__; run by the garbage collector at interpreter
    # exit while a daemon thread that died holding a logging handler's lock, that call never returns
    # (seen: `restlake run` hung after its JVM died of an OutOfMemoryError). Nothing py4j says at INFO
    # is needed.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    builder = SparkSession.builder.appName(app_name).master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if archive is not None:
        class_archive.finish_at_exit(archive, spark)
    spark.sparkContext.setLogLevel(spark_settings.log_level)
    if listener.get("spark.openlineage.transport.type") == "console":
        _show_console_events(spark)
    log.info(
        "spark session ready app=%s master=%s version=%s jars=%s class_archive=%s",
        app_name,
        master,
        spark.version,
        len(jars),
        _archive_state(archive),
    )
    return spark


def _archive_state(archive: class_archive.ArchivePlan | None) -> str:
    """How this JVM started, for the start-up figures a restarted driver's recovery is made of."""
    if archive is None:
        return "off"
    if archive.use is not None:
        return "mapped"
    return "writing" if archive.write is not None else "none"


def cluster_auth_conf(master: str, settings: SparkSettings) -> dict[str, str]:
    """The settings that let a session join a standalone cluster running with ``spark.authenticate``.

    Standalone Spark has one secret for master, workers and every application; the chart generates
    it and the operator hands it to each driver by Secret reference. A driver's task closures carry
    the Postgres DSN to the executors, so the RPC is encrypted too, not only authenticated. The
    secret itself never reaches an executor's command line: Spark leaves it out of the options it
    starts executors with, and the worker passes its own copy in their environment.
    """
    if settings.auth_secret is None or master.startswith("local"):
        return {}
    return {
        "spark.authenticate": "true",
        "spark.authenticate.secret": settings.auth_secret.get_secret_value(),
        "spark.network.crypto.enabled": "true",
    }


def _local_worker_environment() -> None:
    """The environment pyspark hands to the processes it starts (the JVM, the Python workers): they
    read these variables themselves, so they are set here and not passed as settings."""
    if "PYSPARK_PYTHON" not in os.environ:
        # Python workers must see the same packages (pandas, jsonschema) as the driver, and
        # pyspark's default is whatever `python3` is first on PATH. The context reads the
        # environment variable, not spark.pyspark.python, when not launched by spark-submit.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    # Locally everything talks over loopback; without this Spark binds the driver to whatever
    # interface the hostname resolves to and warns about it on every start.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def _lineage_listener(
    conf: dict[str, str], jars: list[Path], lineage: LineageSettings | None
) -> dict[str, str]:
    settings = lineage if lineage is not None else LineageSettings()
    if not settings.spark_listener:
        return {}
    listener = spark_listener_conf(settings, conf.get("spark.driver.extraJavaOptions", ""))
    if not listener:
        log.warning("the OpenLineage Spark listener stays off: RESTLAKE_LINEAGE_TRANSPORT is none")
        return {}
    log.info(
        "OpenLineage Spark listener on (%s) %s",
        "jar from the jar cache" if jars else "jar expected on the image's classpath",
        describe(listener),
    )
    return listener


class SparkSessionStopped(PermanentError):
    """The session's SparkContext is stopped, so there is no JVM to call into."""


def jvm_of(spark: SparkSession) -> Any:
    """The py4j view of the session's JVM (``spark.sparkContext._jvm``, None once the context stopped)."""
    jvm = spark.sparkContext._jvm
    if jvm is None:
        raise SparkSessionStopped(f"the Spark session {spark.sparkContext.appName!r} is stopped")
    return jvm


def _show_console_events(spark: SparkSession) -> None:
    # The console transport logs each event at INFO, below the session's WARN.
    log4j = jvm_of(spark).org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel(CONSOLE_LOGGER, log4j.Level.INFO)
