"""The bronze and quarantine Delta tables: explicit schemas and idempotent appends.

Bronze holds one row per distinct ``idempotency_key`` (a record version), never two. Which rows
of a batch are new is decided by the key ledger in Postgres (``bronze_keys``), at a cost that
grows with the batch, not with the table, and the ledger also makes a replayed batch append
nothing twice. A blind append (rather than a MERGE on the key) never rewrites files and does not
conflict with other sources' queries appending to the same table. The quarantine, which has no
key ledger, is made idempotent by Delta's ``txnAppId``/``txnVersion`` instead.
"""

from __future__ import annotations

import logging

from delta.tables import DeltaTable
from py4j.protocol import Py4JError
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from restlake.jobs.spark.delta_log import delta_log_snapshot
from restlake.jobs.spark.envelope_schema import PARENT_SCHEMA, REQUEST_SCHEMA
from restlake.jobs.spark.typed_columns import TypedColumn, schema_fields
from restlake.jobs.spark.validation import PAYLOAD_VARIANT

log = logging.getLogger(__name__)

PARTITION_COLUMNS = ("source", "ingest_date")
_ROWS_PER_WRITER = 250_000

# Delta keeps per-file min/max/null counts of the first 32 columns by default, computed for every
# row of every append: a quarter of the Parquet write's CPU in a profile of the stream job (a
# 100k-row append of ~1 KB records 1.23 s, against 1.07 s with the list below), mostly spent on
# columns nobody prunes on. Bronze lists the columns readers filter by instead (batch_id for the
# replay check, keys, offsets, times and the typed payload columns), leaving out the payload
# document, its hash and the request and parent structs. Partition columns need no statistics
# (Delta refuses them), nor can booleans have any.
STATS_PROPERTY = "delta.dataSkippingStatsColumns"
# Delta writes a checkpoint every this many commits (10 by default), a Spark job inside the commit
# that took 3-7 s on 2 cores: with a commit per micro-batch, every tenth batch's latency. An
# interleaved A/B at 1,000 events/s end to end, two runs each: p99 11.1 and 8.6 s with 10, 3.8 and
# 4.2 s with 100. The price: a reader or a restarted driver replays up to 99 small commit files on
# top of the last checkpoint.
CHECKPOINT_INTERVAL_PROPERTY = "delta.checkpointInterval"
CHECKPOINT_INTERVAL = 100
_NO_STATS = frozenset({"payload", "content_hash", "request", "parent"})
_STATS_TYPES = (T.NumericType, T.StringType, T.DateType, T.TimestampType, T.TimestampNTZType)

BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), nullable=False),
        T.StructField("external_id", T.StringType(), nullable=False),
        T.StructField("idempotency_key", T.StringType(), nullable=False),
        T.StructField("content_hash", T.StringType(), nullable=False),
        T.StructField("version", T.StringType()),
        T.StructField("fetched_at", T.TimestampType(), nullable=False),
        T.StructField("payload", T.StringType(), nullable=False),
        T.StructField("envelope_version", T.IntegerType()),
        T.StructField("request", REQUEST_SCHEMA),
        # spec.parent: null but for child sources. Tables created before it gain the column on their
        # next append (mergeSchema), so the older rows read as null.
        T.StructField("parent", PARENT_SCHEMA),
        T.StructField("kafka_topic", T.StringType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("ingested_at", T.TimestampType(), nullable=False),
        T.StructField("batch_id", T.LongType(), nullable=False),
        T.StructField("ingest_date", T.DateType(), nullable=False),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), nullable=False),
        T.StructField("reason", T.StringType(), nullable=False),
        T.StructField("record_source", T.StringType()),
        T.StructField("external_id", T.StringType()),
        T.StructField("idempotency_key", T.StringType()),
        T.StructField("kafka_key", T.StringType()),
        T.StructField("raw_value", T.BinaryType()),
        T.StructField("kafka_topic", T.StringType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("quarantined_at", T.TimestampType(), nullable=False),
        T.StructField("batch_id", T.LongType(), nullable=False),
        T.StructField("ingest_date", T.DateType(), nullable=False),
    ]
)


def ensure_table(
    spark: SparkSession,
    path: str,
    schema: T.StructType,
    *,
    partition_by: tuple[str, ...] = PARTITION_COLUMNS,
    stats_columns: tuple[str, ...] | None = None,
) -> None:
    """Create the Delta table at ``path`` with ``schema``, partitioned by source and ingest_date
    unless the spec says otherwise (``sinks.bronze.partitionBy``); with ``stats_columns``, Delta
    keeps file statistics of those columns only."""
    if _exists(spark, path):
        # CREATE TABLE IF NOT EXISTS of an existing table changes nothing, yet it costs a command's
        # analysis and a snapshot: 4-5 s on a cold driver, the first thing a restarted one did.
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    builder = builder.partitionedBy(*partition_by).property(
        CHECKPOINT_INTERVAL_PROPERTY, str(CHECKPOINT_INTERVAL)
    )
    if stats_columns:
        builder = builder.property(STATS_PROPERTY, ",".join(stats_columns))
    builder.execute()


def _exists(spark: SparkSession, path: str) -> bool:
    """Whether a Delta table is at ``path``, from its log on the driver (no Spark job)."""
    try:
        return int(delta_log_snapshot(spark, path).version()) >= 0
    except Py4JError as exc:  # an internal API: the builder decides instead
        log.info("reading the Delta log of %s failed (%s); creating it if missing", path, type(exc).__name__)
        return False


def stats_columns(schema: T.StructType, partition_by: tuple[str, ...]) -> tuple[str, ...]:
    """The bronze columns Delta keeps file statistics for, in table order: of the types it can
    skip files on (a boolean typed column cannot be listed)."""
    return tuple(
        f.name
        for f in schema.fields
        if f.name not in _NO_STATS and f.name not in partition_by and isinstance(f.dataType, _STATS_TYPES)
    )


def dedupe_by_key(valid: DataFrame) -> DataFrame:
    """One row per idempotency_key: the first on the topic, so a replay keeps the same one."""
    first = Window.partitionBy("idempotency_key").orderBy("kafka_partition", "kafka_offset")
    return valid.withColumn("_rn", F.row_number().over(first)).where(F.col("_rn") == 1).drop("_rn")


def bronze_schema(typed: list[TypedColumn]) -> T.StructType:
    """BRONZE_SCHEMA followed by the source's typed payload columns."""
    return T.StructType([*BRONZE_SCHEMA.fields, *schema_fields(typed)])


def bronze_rows(valid: DataFrame, batch_id: int, typed: list[TypedColumn] | None = None) -> DataFrame:
    """Valid, deduplicated envelopes → bronze columns, in the table's order, then the typed ones."""
    now = F.current_timestamp()
    return valid.select(
        *[
            F.col(f.name)
            for f in BRONZE_SCHEMA.fields
            if f.name not in {"ingested_at", "batch_id", "ingest_date"}
        ],
        now.alias("ingested_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.to_date(now).alias("ingest_date"),
        *[c.extract(F.col(PAYLOAD_VARIANT)) for c in typed or []],
    )


def quarantine_rows(rejected: DataFrame, *, source: str, batch_id: int) -> DataFrame:
    """Rejected records → quarantine columns; ``source`` is the query's, ``record_source`` the record's."""
    now = F.current_timestamp()
    return rejected.select(
        F.lit(source).alias("source"),
        F.col("reason"),
        F.col("source").alias("record_source"),
        "external_id",
        "idempotency_key",
        "kafka_key",
        "raw_value",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        now.alias("quarantined_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.to_date(now).alias("ingest_date"),
    )


def append(
    rows: DataFrame,
    *,
    path: str,
    app_id: str | None,
    batch_id: int,
    merge_schema: bool = False,
    rows_hint: int | None = None,
    user_metadata: str | None = None,
) -> None:
    """Append; with ``app_id``, with Delta's idempotent-write options, so that a second write of
    ``batch_id`` is skipped. Those cost a Delta state reconstruction per write (three Spark jobs),
    so bronze, whose key ledger already makes replays idempotent, passes None.

    ``merge_schema`` lets a new typed column (a property added to the source's schema) extend
    the table; a changed type still fails the write, as a breaking schema change should.
    ``user_metadata`` is kept in the commit (``bronze_commits.tag``).
    """
    if rows_hint is not None:
        # The batch arrives in shuffle partitions (the key dedupe), which would write one small
        # file per partition per batch; one writer task per ~250k rows keeps files few and sizeable.
        rows = rows.coalesce(max(1, -(-rows_hint // _ROWS_PER_WRITER)))
    writer = rows.write.format("delta").mode("append")
    if app_id is not None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", batch_id)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if user_metadata is not None:
        writer = writer.option("userMetadata", user_metadata)
    writer.save(path)
