"""The spec's sink toggles and bronze partitioning, honoured by the stream job (``jobs/spark/sinks.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.errors import ConfigError
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
