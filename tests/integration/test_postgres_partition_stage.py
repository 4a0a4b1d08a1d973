"""The executors' COPY into a per-attempt staging table (restlake.jobs.spark.postgres_copy and
restlake.postgres.partition_stage) against the stack's real Postgres and a real Spark session.

The merge rules over this path run in test_merge.py (every merge test runs each staging path);
here: what is particular to a table that other processes fill before the merge reads it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pyspark.sql import DataFrame, SparkSession

from restlake.errors import PermanentError, TransientError
from restlake.jobs.spark.postgres_copy import JdbcTarget, copy_partitions, jdbc_target
from restlake.postgres.arrow_stage import rows_table
from restlake.postgres.merge import MergeRow, Stager, merge_staged
from restlake.postgres.partition_stage import (
    SCHEMA,
    PartitionStage,
    backfill_claim,
    drop_orphans,
    partition_stager,
    version_readings,
)

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def source() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"


def rows_of(source: str, count: int, *, payload: str = '{"n": 1}') -> list[MergeRow]:
    return [
        MergeRow(
            source=source,
            external_id=str(i),
            idempotency_key=f"{source}/{i}",
            content_hash=f"h{i}",
            version=str(i),
            fetched_at=T0,
            payload=payload,
            kafka_topic="t",
            kafka_partition=0,
            kafka_offset=i,
        )
        for i in range(count)
    ]


def frame(spark: SparkSession, rows: list[MergeRow], partitions: int = 4) -> DataFrame:
    return spark.createDataFrame(rows_table(rows)).repartition(partitions)


def held(dsn: str, stage: PartitionStage) -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(stage.identifier())).fetchone()
    assert found is not None
    return int(found[0])


def exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = %s", (SCHEMA, name)
        ).fetchone()
    return bool(found and found[0])


def target_of(dsn: str) -> JdbcTarget:
    target = jdbc_target(dsn)
    assert target is not None
    return target


@pytest.fixture
def stage(dsn: str, source: str) -> Iterator[PartitionStage]:
    """A created staging table of the test's source, dropped after the test if still there."""
    created = PartitionStage.new(source)
    created.create(dsn)
    yield created
    created.drop(dsn)


def staged_by_executors(
    spark: SparkSession, dsn: str, stage: PartitionStage, rows: list[MergeRow], batch_id: int
) -> Stager:
    """``rows`` COPYed into ``stage`` by the executors, and the stager the merge then runs."""
    written = copy_partitions(frame(spark, rows), target_of(dsn), stage, batch_id=batch_id)
    keys = len({r.external_id for r in rows})
    versions = version_readings(pa.array([r.version for r in rows]))
    return partition_stager(stage, batch_id=batch_id, rows=written, keys=keys, versions=versions)


def test_a_partition_staged_twice_holds_its_rows_once(
    spark: SparkSession, dsn: str, source: str, stage: PartitionStage
) -> None:
    # Spark re-runs a task whose executor died after its COPY committed: the second attempt of a
    # partition replaces what the first left instead of adding to it.
    df = frame(spark, rows_of(source, 50))
    assert copy_partitions(df, target_of(dsn), stage, batch_id=0) == 50
    assert copy_partitions(df, target_of(dsn), stage, batch_id=0) == 50
    assert held(dsn, stage) == 50


def test_a_staging_table_that_lost_rows_is_not_merged(
    spark: SparkSession, dsn: str, source: str, stage: PartitionStage
) -> None:
    # An UNLOGGED table is emptied when Postgres recovers from a crash: a merge after that must
    # fail (and be staged again), never commit the batch short with its ledger row.
    stager = staged_by_executors(spark, dsn, stage, rows_of(source, 20), batch_id=3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(stage.identifier()))
    with pytest.raises(TransientError, match="holds 0 rows, 20 were staged"):
        merge_staged(dsn, table="raw.api_events", source=source, query_id="q", batch_id=3, stage=stager)
    with psycopg.connect(dsn) as conn:
        merged = conn.execute("SELECT count(*) FROM raw.api_events WHERE source = %s", (source,)).fetchone()
        ledger = conn.execute(
            "SELECT count(*) FROM raw.ingest_batches WHERE source = %s", (source,)
        ).fetchone()
    assert (merged, ledger) == ((0,), (0,))


def test_the_merge_drops_its_staging_table_when_it_commits(
    spark: SparkSession, dsn: str, source: str, stage: PartitionStage
) -> None:
    stager = staged_by_executors(spark, dsn, stage, rows_of(source, 10), batch_id=0)
    result = merge_staged(dsn, table="raw.api_events", source=source, query_id="q", batch_id=0, stage=stager)
    assert (result.rows_in, result.inserted) == (10, 10)
    assert not exists(dsn, stage.name)


def test_staging_tables_a_killed_driver_left_are_dropped_for_its_source_only(dsn: str, source: str) -> None:
    mine = [PartitionStage.new(source) for _ in range(2)]
    other = PartitionStage.new(f"{source}-other")
    backfill = PartitionStage.new(source, owner="backfill")  # a running backfill's: the stream keeps off
    for created in (*mine, other, backfill):
        created.create(dsn)
    try:
        assert drop_orphans(dsn, source) == 2
        assert [exists(dsn, s.name) for s in mine] == [False, False]
        assert exists(dsn, other.name) and exists(dsn, backfill.name)
        assert drop_orphans(dsn, source) == 0
    finally:
        other.drop(dsn)
        backfill.drop(dsn)


def test_a_backfill_drops_what_killed_backfills_left_unless_another_is_running(dsn: str, source: str) -> None:
    left = PartitionStage.new(source, owner="backfill")
    stream = PartitionStage.new(source)
    for created in (left, stream):
        created.create(dsn)
    try:
        with backfill_claim(dsn, source) as alone:
            assert alone and not exists(dsn, left.name)
            assert exists(dsn, stream.name)  # the stream's own are the stream's to drop
            running = PartitionStage.new(source, owner="backfill")
            running.create(dsn)
            with backfill_claim(dsn, source) as second:  # beside a running one: its table is live
                assert not second and exists(dsn, running.name)
        with backfill_claim(dsn, source) as alone_again:  # the first ended: its lock went with it
            assert alone_again and not exists(dsn, running.name)
    finally:
        stream.drop(dsn)


def test_a_record_of_another_source_is_refused_before_the_merge(
    spark: SparkSession, dsn: str, source: str, stage: PartitionStage
) -> None:
    rows = [*rows_of(source, 5), *rows_of("someone-else", 1)]
    with pytest.raises(PermanentError, match="holds a record of source 'someone-else'"):
        copy_partitions(frame(spark, rows), target_of(dsn), stage, batch_id=4)


def test_a_payload_postgres_refuses_is_a_permanent_error_naming_its_sqlstate(
    spark: SparkSession, dsn: str, source: str, stage: PartitionStage
) -> None:
    rows = rows_of(source, 3, payload="{not json")
    with pytest.raises(PermanentError, match="SQLSTATE 22P02"):
        copy_partitions(frame(spark, rows, 1), target_of(dsn), stage, batch_id=5)
    assert held(dsn, stage) == 0


def test_an_unreachable_server_is_transient_and_names_no_host(
    spark: SparkSession, dsn: str, source: str, stage: PartitionStage
) -> None:
    good = target_of(dsn)
    info = conninfo_to_dict(dsn)
    # A port nothing listens on: the executors cannot connect.
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT inet_server_port()").fetchone()
    assert found is not None
    dead = JdbcTarget(good.url.replace(f":{found[0]}/", ":1/"), good.properties)
    with pytest.raises(TransientError, match="SQLSTATE 08") as caught:
        copy_partitions(frame(spark, rows_of(source, 2), 1), dead, stage, batch_id=6)
    assert str(info.get("host")) not in str(caught.value)


def test_the_executors_reach_the_server_libpq_reaches_without_the_password_in_repr(dsn: str) -> None:
    with_password = make_conninfo(dsn, password="s3cret-canary")
    target = jdbc_target(with_password)
    assert target is not None
    with psycopg.connect(dsn) as conn:
        port = conn.info.port
        dbname = conn.info.dbname
    assert target.url.endswith(f":{port}/{dbname}")
    assert target.properties["password"] == "s3cret-canary"
    assert "s3cret-canary" not in repr(target)
