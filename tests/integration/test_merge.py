"""restlake.postgres.migrations and .merge against the stack's real Postgres."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from pydantic import SecretStr
from pyspark.sql import SparkSession

from restlake.errors import ConfigError, PermanentError, TransientError
from restlake.jobs.spark.postgres_copy import copy_partitions, jdbc_target
from restlake.postgres import migrations
from restlake.postgres.arrow_stage import arrow_stager, rows_table
from restlake.postgres.identifiers import TableName
from restlake.postgres.merge import (
    MergeRow,
    Staged,
    Stager,
    VersionState,
    is_newer,
    merge_batch,
    merge_staged,
)
from restlake.postgres.partition_stage import PartitionStage, partition_stager, version_readings

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TABLE = "raw.api_events"


# How merge() stages each test source's rows: MergeRow values (merge_batch, the backfill's path),
# one Arrow table (arrow_stager, the stream job's driver-side path) or a Spark DataFrame whose
# partitions the executors COPY (partition_stage, the stream job's usual path). Every merge test
# runs all three ways.
_STAGING: dict[str, str] = {}
_SPARK: list[SparkSession] = []


@pytest.fixture(params=["rows", "arrow", "partitions"])
def source(request: pytest.FixtureRequest) -> str:
    """A source name of the test's own, so tests share raw.api_events without seeing each other."""
    name = f"it-{uuid.uuid4().hex[:12]}"
    _STAGING[name] = request.param
    if request.param == "partitions" and not _SPARK:
        _SPARK.append(request.getfixturevalue("spark"))
    return name


def row(source: str, external_id: str, content: str, version: str | None, fetched: datetime = T0) -> MergeRow:
    return MergeRow(
        source=source,
        external_id=external_id,
        idempotency_key=f"{source}/{external_id}/{content}",
        content_hash=content,
        version=version,
        fetched_at=fetched,
        payload=f'{{"id": "{external_id}", "content": "{content}"}}',
    )


def stored(dsn: str, source: str, table: str = TABLE) -> dict[str, dict[str, Any]]:
    query = sql.SQL(
        "SELECT external_id, payload, content_hash, version, updated_at, ingest_batch_id"
        " FROM {} WHERE source = %s"
    ).format(TableName.parse(table).identifier())
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, (source,))
        return {r["external_id"]: r for r in cur.fetchall()}


def merge(dsn: str, source: str, batch_id: int, rows: list[MergeRow], **kw: Any) -> Any:
    table = kw.pop("table", TABLE)
    if _STAGING.get(source) == "arrow":
        stage = arrow_stager(rows_table(rows), source=source, batch_id=batch_id)
        return merge_staged(dsn, table=table, source=source, query_id="q1", batch_id=batch_id, stage=stage)
    if _STAGING.get(source) == "partitions":
        stage = partitions_stager(dsn, source, batch_id, rows)
        return merge_staged(dsn, table=table, source=source, query_id="q1", batch_id=batch_id, stage=stage)
    return merge_batch(dsn, table=table, source=source, query_id="q1", batch_id=batch_id, rows=rows)


def partitions_stager(dsn: str, source: str, batch_id: int, rows: list[MergeRow]) -> Stager:
    """What the stream job's Postgres sink does: the executors COPY a DataFrame's partitions into a
    staging table of the attempt's own, which the merge reads and drops."""

    def stage(conn: psycopg.Connection) -> Staged:
        target = jdbc_target(dsn)
        assert target is not None
        staging = PartitionStage.new(source)
        staging.create(dsn)
        # Three partitions whatever the row count: rows from several tasks land in one table.
        frame = _SPARK[0].createDataFrame(rows_table(rows)).repartition(3)
        written = copy_partitions(frame, target, staging, batch_id=batch_id)
        versions = version_readings(pa.array([r.version for r in rows], pa.string()))
        keys = len({r.external_id for r in rows})
        return partition_stager(staging, batch_id=batch_id, rows=written, keys=keys, versions=versions)(conn)

    return stage


def test_migrations_applied_twice_are_a_noop(dsn: str) -> None:
    assert migrations.apply(dsn) == []
    assert migrations.apply(SecretStr(dsn)) == []
    with psycopg.connect(dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM raw.schema_migrations ORDER BY name")]
    assert names == [m.name for m in migrations.load()]


@pytest.fixture
def fresh_db(dsn: str) -> Iterator[str]:
    name = f"restlake_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_concurrent_appliers_apply_each_migration_once(fresh_db: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            results.append(migrations.apply(fresh_db))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=apply) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    everything = [m.name for m in migrations.load()]
    assert sorted(results, key=len) == [[], [], [], everything]


def test_insert_then_newer_version_updates(dsn: str, source: str) -> None:
    first = merge(dsn, source, 0, [row(source, "1", "a", "2024-05-01T12:00:00Z"), row(source, "2", "b", "1")])
    assert (first.rows_in, first.rows_distinct, first.inserted, first.updated, first.replayed) == (
        2,
        2,
        2,
        0,
        False,
    )

    second = merge(
        dsn, source, 1, [row(source, "1", "a2", "2024-05-01T13:00:00Z"), row(source, "2", "b2", "2")]
    )
    assert (second.inserted, second.updated, second.unchanged) == (0, 2, 0)
    rows = stored(dsn, source)
    assert {k: (v["content_hash"], v["version"], v["ingest_batch_id"]) for k, v in rows.items()} == {
        "1": ("a2", "2024-05-01T13:00:00Z", 1),
        "2": ("b2", "2", 1),
    }
    assert rows["1"]["payload"] == {"id": "1", "content": "a2"}


def test_characters_copy_reads_as_escapes_arrive_unchanged(dsn: str, source: str) -> None:
    # Backslashes (JSON's own escapes), and tabs, newlines and carriage returns both as JSON
    # whitespace and inside text columns: COPY's text format reads each of them as syntax.
    payload = '{\n\t"id": "a\\\\b",\r\n "quote": "say \\"hi\\"", "e": "\\u00e9", "nl": "x\\ny"\n}'
    tricky = MergeRow(
        source=source,
        external_id="tab\there\\back\nline\rend",
        idempotency_key=f"{source}/k\\1\t",
        content_hash="\\c\\1",
        version="v\\1\t",
        fetched_at=T0,
        payload=payload,
        kafka_topic="topic\\t",
        kafka_partition=None,
        kafka_offset=None,
    )
    plain = row(source, "", "empty-id-is-text-not-null", None)
    result = merge(dsn, source, 0, [tricky, plain])
    assert (result.rows_in, result.inserted) == (2, 2)
    rows = stored(dsn, source)
    assert set(rows) == {tricky.external_id, ""}
    got = rows[tricky.external_id]
    assert got["payload"] == json.loads(payload)
    assert (got["content_hash"], got["version"]) == (tricky.content_hash, tricky.version)
    with psycopg.connect(dsn) as conn:
        extra = conn.execute(
            sql.SQL(
                "SELECT idempotency_key, kafka_topic, kafka_partition, fetched_at FROM {}"
                " WHERE source = %s AND external_id = %s"
            ).format(TableName.parse(TABLE).identifier()),
            (source, tricky.external_id),
        ).fetchone()
    assert extra == (tricky.idempotency_key, tricky.kafka_topic, None, T0)


def test_stale_version_is_ignored(dsn: str, source: str) -> None:
    merge(dsn, source, 0, [row(source, "1", "new", "2024-05-01T12:00:00Z"), row(source, "2", "new", "10")])
    later = T0 + timedelta(hours=1)  # fetched later, but its version is older: it still loses
    result = merge(
        dsn,
        source,
        1,
        [row(source, "1", "old", "2024-05-01T11:00:00Z", later), row(source, "2", "old", "9", later)],
    )
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 2)
    assert {k: v["content_hash"] for k, v in stored(dsn, source).items()} == {"1": "new", "2": "new"}


def test_same_content_is_never_rewritten(dsn: str, source: str) -> None:
    merge(dsn, source, 0, [row(source, "1", "same", "2024-05-01T12:00:00Z")])
    before = stored(dsn, source)["1"]
    result = merge(dsn, source, 1, [row(source, "1", "same", "2025-01-01T00:00:00Z", T0 + timedelta(days=1))])
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 1)
    after = stored(dsn, source)["1"]
    assert (after["updated_at"], after["version"], after["ingest_batch_id"]) == (
        before["updated_at"],
        "2024-05-01T12:00:00Z",
        0,
    )


def test_duplicates_inside_one_batch_keep_the_newest(dsn: str, source: str) -> None:
    rows = [
        row(source, "1", "v2", "2024-05-01T12:02:00Z"),
        row(source, "1", "v3", "2024-05-01T12:03:00Z"),
        row(source, "1", "v1", "2024-05-01T12:01:00Z"),
        row(source, "1", "v3", "2024-05-01T12:03:00Z"),  # the same record twice
        row(source, "2", "x-late", None, T0 + timedelta(seconds=5)),
        row(source, "2", "x-early", None, T0),
    ]
    result = merge(dsn, source, 0, rows)
    assert (result.rows_in, result.rows_distinct, result.inserted, result.updated) == (6, 2, 2, 0)
    assert {k: v["content_hash"] for k, v in stored(dsn, source).items()} == {"1": "v3", "2": "x-late"}


def test_replayed_batch_is_a_noop(dsn: str, source: str) -> None:
    merge(dsn, source, 7, [row(source, "1", "a", "1")])
    replay = merge(dsn, source, 7, [row(source, "1", "b", "2"), row(source, "9", "c", "1")])
    assert (replay.replayed, replay.rows_in, replay.merged) == (True, 1, 0)
    assert {k: v["content_hash"] for k, v in stored(dsn, source).items()} == {"1": "a"}
    with psycopg.connect(dsn) as conn:
        ledger = conn.execute(
            "SELECT query_id, batch_id, target_table, rows_in, rows_merged FROM raw.ingest_batches"
            " WHERE source = %s",
            (source,),
        ).fetchall()
    assert ledger == [("q1", 7, TABLE, 1, 1)]


def test_bad_table_name_is_rejected_before_connecting(source: str) -> None:
    with pytest.raises(ConfigError, match=r"^spec.sinks.postgres.table: 'raw.x; DROP TABLE raw.api_events'"):
        merge_batch(
            "postgresql://nobody@127.0.0.1:1/none",
            table="raw.x; DROP TABLE raw.api_events",
            source=source,
            query_id="q",
            batch_id=0,
            rows=[],
        )


def test_other_sink_table_has_the_seed_shape(dsn: str, source: str) -> None:
    table = TableName("it_merge", f"t_{uuid.uuid4().hex[:8]}")
    migrations.ensure_table(dsn, table)
    migrations.ensure_table(dsn, table)
    result = merge(dsn, source, 0, [row(source, "1", "a", "1")], table=str(table))
    assert result.inserted == 1
    assert set(stored(dsn, source, str(table))) == {"1"}


def test_rows_of_another_source_fail_the_batch_and_write_nothing(dsn: str, source: str) -> None:
    with pytest.raises(PermanentError, match="holds a record of source 'other'"):
        merge(dsn, source, 0, [row(source, "1", "a", "1"), row("other", "2", "b", "1")])
    assert stored(dsn, source) == {}
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM raw.ingest_batches WHERE source = %s", (source,)
        ).fetchone() == (0,)


def test_unreachable_postgres_is_transient_and_never_shows_the_dsn(source: str) -> None:
    secret = "s3cr3t-pw"
    dsn = f"postgresql://restlake:{secret}@127.0.0.1:1/db?connect_timeout=2"
    with pytest.raises(TransientError) as err:
        merge_batch(SecretStr(dsn), table=TABLE, source=source, query_id="q", batch_id=0, rows=[])
    assert str(err.value) == (
        f"postgres error while merging batch 0 of source {source} into raw.api_events: "
        "OperationalError (no server response)"
    )
    # The driver's own message is dropped from the chain: it may quote the host or user.
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert secret not in str(err.value) and "127.0.0.1" not in str(err.value)


def test_terminated_backend_is_transient(dsn: str, source: str) -> None:
    conn = psycopg.connect(dsn)
    try:
        pid = conn.info.backend_pid
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(TransientError):
            merge_batch(
                conn, table=TABLE, source=source, query_id="q", batch_id=0, rows=[row(source, "1", "a", None)]
            )
    finally:
        conn.close()


# (incoming, current) pairs whose outcome the SQL WHERE clause must agree on with is_newer().
RULE_CASES = [
    (("a", "2025-01-01T00:00:00Z", 60), ("a", "2024-01-01T00:00:00Z", 0)),
    (("b", "2024-05-01T13:00:00+02:00", 0), ("a", "2024-05-01T12:00:00Z", 0)),
    (("b", "2024-05-01T15:00:00+02:00", 0), ("a", "2024-05-01T12:00:00Z", 0)),
    (("b", "10", 0), ("a", "9", 0)),
    (("b", "9", 60), ("a", "10", 0)),
    (("b", "etag-b", 60), ("a", "etag-z", 0)),
    (("b", "etag-z", -60), ("a", "etag-b", 0)),
    (("b", None, 60), ("a", None, 0)),
    (("b", "2024-05-01T12:00:00Z", 60), ("a", "2024-05-01T12:00:00Z", 0)),
    (("b", "2024-05-01T12:00:00Z", -60), ("a", "2024-05-01T12:00:00Z", 0)),
    (("b", "1714564800", 60), ("a", "2024-05-01T12:00:00Z", 0)),
    (("b", "1714564900", -60), ("a", "2024-05-01T12:00:00Z", 0)),
    (("b", "v1", 0), ("a", "v1", 0)),
    (("b", "Wed, 01 May 2024 13:00:00 GMT", -60), ("a", "2024-05-01T12:00:00Z", 0)),
]


@pytest.mark.parametrize(("incoming", "current"), RULE_CASES)
def test_sql_rule_agrees_with_python_rule(
    dsn: str, source: str, incoming: tuple[str, str | None, int], current: tuple[str, str | None, int]
) -> None:
    def make(spec: tuple[str, str | None, int]) -> MergeRow:
        content, version, seconds = spec
        return row(source, "k", content, version, T0 + timedelta(seconds=seconds))

    old, new = make(current), make(incoming)
    merge(dsn, source, 0, [old])
    result = merge(dsn, source, 1, [new])
    expected = is_newer(
        VersionState(new.content_hash, new.version, new.fetched_at),
        VersionState(old.content_hash, old.version, old.fetched_at),
    )
    assert result.updated == int(expected)
    assert stored(dsn, source)["k"]["content_hash"] == (new.content_hash if expected else old.content_hash)
