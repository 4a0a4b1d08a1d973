"""The spec's sink toggles and bronze partitioning, honoured by the stream job (``jobs/spark/sinks.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.errors import ConfigError
from restlake.jobs.spark import bronze
from restlake.jobs.spark.stream import StreamSummary
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration

POISON = (b"bad", b"\xff not JSON")


def counts(summary: StreamSummary) -> tuple[int, int, int, int, int]:
    return (
        summary.rows_read,
        summary.bronze_written,
        summary.quarantined,
        summary.pg_inserted,
        summary.pg_updated,
    )


def test_postgres_off_writes_the_lake_only_with_the_specs_partition_columns(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, postgres_enabled=False, partition_by=("ingest_date",))
    records = [job.envelope(i, name=f"item {i}") for i in range(5)]
    job.send(*records, records[0], POISON)

    summary = job.run(spark)

    assert counts(summary) == (7, 5, 1, 0, 0)
    assert sorted(r.idempotency_key for r in job.bronze(spark)) == sorted(e.idempotency_key for e in records)
    assert [r.reason for r in job.quarantine(spark)] == ["malformed_envelope"]
    assert job.postgres() == {} and job.ledger() == []
    detail = DeltaTable.forPath(spark, job.config.bronze_path).detail().first()
    assert detail is not None and list(detail.partitionColumns) == ["ingest_date"]

    # A table's partitioning cannot change in place: a spec that disagrees is refused, by name.
    other = job.config.model_copy(update={"partition_by": ("source", "ingest_date")})
    with pytest.raises(ConfigError, match=r"partitionBy is \['source', 'ingest_date'\].*partitioned by"):
        job.run(spark, other)


def test_bronze_and_quarantine_off_write_postgres_only(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, bronze_enabled=False, quarantine_enabled=False)
    records = [job.envelope(i, name=f"item {i}") for i in range(5)]
    job.send(*records, records[0], POISON)

    first = job.run(spark)

    # The poison record is counted as rejected even though no table keeps it.
    assert counts(first) == (7, 0, 1, 5, 0)
    assert set(job.postgres()) == {str(i) for i in range(5)}
    assert not DeltaTable.isDeltaTable(spark, job.config.bronze_path)
    assert not DeltaTable.isDeltaTable(spark, job.config.quarantine_path)

    newer = job.envelope(3, name="item 3, v2", minute=4)
    job.send(newer, records[1])
    second = job.run(spark)
    assert counts(second) == (2, 0, 0, 0, 1)
    assert job.postgres()["3"][:2] == ("2024-05-01T12:04:00Z", newer.content_hash)
    assert [row[1] for row in job.ledger()] == [0, 1]


def test_a_partition_column_that_bronze_lacks_is_refused_before_any_write(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, partition_by=("ingest_date", "region"))
    job.send(job.envelope(1, name="one"))
    with pytest.raises(ConfigError, match=r"partitionBy names \['region'\], not columns of the bronze table"):
        job.run(spark)
    assert not DeltaTable.isDeltaTable(spark, job.config.bronze_path)
    assert job.postgres() == {}


def file_stats_columns(path: str) -> set[str]:
    """The columns the newest data file's Delta statistics cover (its ``add`` action in the log)."""
    adds = [
        json.loads(line)["add"]
        for log_file in sorted(Path(path, "_delta_log").glob("*.json"))
        for line in log_file.read_text().splitlines()
        if '"add"' in line
    ]
    assert adds, f"no data file in {path}"
    return set(json.loads(adds[-1]["stats"])["minValues"])


def table_property(spark: SparkSession, path: str, key: str) -> str | None:
    detail = DeltaTable.forPath(spark, path).detail().first()
    assert detail is not None
    return detail.properties.get(key)


def stats_property(spark: SparkSession, path: str) -> list[str]:
    return str(table_property(spark, path, "delta.dataSkippingStatsColumns") or "").split(",")


# The bronze columns readers filter on, in table order, then the fixture schema's typed columns.
FILTER_COLUMNS = [
    "external_id",
    "idempotency_key",
    "version",
    "fetched_at",
    "envelope_version",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "ingested_at",
    "batch_id",
]
# p_is_open is boolean: Delta keeps no statistics of booleans.
TYPED = ["p_id", "p_name", "p_score"]


def test_bronze_keeps_file_statistics_of_the_columns_readers_filter_on(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    """Delta's statistics of every column cost each append a quarter of its Parquet write: bronze
    keeps them for the keys, offsets, times, batch ids and typed columns, not for the payload."""
    fresh = StreamJob(stack, tmp_path / "fresh")
    fresh.send(*[fresh.envelope(i, name=f"item {i}", score=i / 2) for i in range(3)])
    assert counts(fresh.run(spark)) == (3, 3, 0, 3, 0)
    assert stats_property(spark, fresh.config.bronze_path) == FILTER_COLUMNS + TYPED
    assert file_stats_columns(fresh.config.bronze_path) == set(FILTER_COLUMNS + TYPED)

    # A table from before these statistics columns, without the typed columns its schema declares
    # now: its first append adds the columns and then the property, so later files are covered too.
    old = StreamJob(stack, tmp_path / "old")
    DeltaTable.createIfNotExists(spark).location(old.config.bronze_path).addColumns(
        bronze.BRONZE_SCHEMA
    ).partitionedBy(*bronze.PARTITION_COLUMNS).execute()
    assert stats_property(spark, old.config.bronze_path) == [""]
    old.send(old.envelope(1, name="one"))
    assert counts(old.run(spark)) == (1, 1, 0, 1, 0)
    assert stats_property(spark, old.config.bronze_path) == FILTER_COLUMNS + TYPED
    old.send(old.envelope(2, name="two", score=2.5))
    assert counts(old.run(spark)) == (1, 1, 0, 1, 0)
    assert {"batch_id", "p_id", "p_score"} <= file_stats_columns(old.config.bronze_path)
    assert "payload" not in file_stats_columns(old.config.bronze_path)
    assert sorted(r.external_id for r in old.bronze(spark)) == ["1", "2"]


def test_stream_tables_checkpoint_every_100_commits_unless_they_say_otherwise(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    """Delta's default checkpoint every 10 commits cost every tenth micro-batch 3-7 s. New tables
    get 100; a table from before gets it with its first append; a table's own interval is kept."""
    key = bronze.CHECKPOINT_INTERVAL_PROPERTY
    fresh = StreamJob(stack, tmp_path / "fresh")
    fresh.send(fresh.envelope(1, name="one"))
    assert counts(fresh.run(spark)) == (1, 1, 0, 1, 0)
    assert table_property(spark, fresh.config.bronze_path, key) == "100"
    assert table_property(spark, fresh.config.quarantine_path, key) == "100"

    old = StreamJob(stack, tmp_path / "old")
    own = StreamJob(stack, tmp_path / "own")
    for job, properties in ((old, {}), (own, {key: "20"})):
        builder = DeltaTable.createIfNotExists(spark).location(job.config.bronze_path)
        builder = builder.addColumns(bronze.BRONZE_SCHEMA).partitionedBy(*bronze.PARTITION_COLUMNS)
        for name, value in properties.items():
            builder = builder.property(name, value)
        builder.execute()
        assert table_property(spark, job.config.bronze_path, key) == properties.get(key)
        job.send(job.envelope(1, name="one"))
        assert counts(job.run(spark)) == (1, 1, 0, 1, 0)
    assert table_property(spark, old.config.bronze_path, key) == "100"
    assert table_property(spark, own.config.bronze_path, key) == "20"


def test_columns_of_one_value_per_record_are_written_without_a_dictionary(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    """Parquet's dictionary attempt on unique values (keys, hashes, offsets, payloads) costs every
    append a hash per value and never pays; columns with few values keep theirs."""
    job = StreamJob(stack, tmp_path)
    poison = [(b"bad %d" % i, b"\xff not JSON %d" % i) for i in range(20)]
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(20)], *poison)
    assert counts(job.run(spark)) == (40, 20, 20, 20, 0)

    def encodings(table: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for file in Path(table).rglob("*.parquet"):
            meta = pq.ParquetFile(file).metadata
            for group in range(meta.num_row_groups):
                for index in range(meta.num_columns):
                    column = meta.row_group(group).column(index)
                    found.setdefault(column.path_in_schema, set()).update(column.encodings)
        return found

    def dictionary(encoded: set[str]) -> bool:
        return bool(encoded & {"PLAIN_DICTIONARY", "RLE_DICTIONARY"})

    lake = encodings(job.config.bronze_path)
    for column in ("external_id", "idempotency_key", "content_hash", "payload", "kafka_offset"):
        assert not dictionary(lake[column]), (column, lake[column])
    for column in ("kafka_topic", "batch_id", "request.status"):
        assert dictionary(lake[column]), (column, lake[column])
    rejected = encodings(job.config.quarantine_path)
    assert not dictionary(rejected["raw_value"]) and dictionary(rejected["reason"])


def test_a_batch_over_more_partition_values_than_open_writers_lands_every_row_once(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    """A write task keeps a few partition writers open instead of sorting its rows by partition
    value first, and sorts what is left once it meets more values than that: every row still lands
    once, in its own partition folder."""
    open_writers = int(spark.conf.get("spark.sql.maxConcurrentOutputFileWriters") or 0)
    regions = 3 * max(open_writers, 4)  # more values than a task keeps writers open for
    job = StreamJob(stack, tmp_path, partitions=1, partition_by=("source", "p_name"))
    job.send(*[job.envelope(i, name=f"region-{i % regions}") for i in range(5 * regions)])
    assert counts(job.run(spark)) == (5 * regions, 5 * regions, 0, 5 * regions, 0)

    landed = spark.read.format("delta").load(job.config.bronze_path).groupBy("p_name").count().collect()
    assert {row["p_name"]: row["count"] for row in landed} == {f"region-{k}": 5 for k in range(regions)}
    folders = {p.name for p in Path(job.config.bronze_path, f"source={job.source}").iterdir() if p.is_dir()}
    assert folders == {f"p_name=region-{k}" for k in range(regions)}
