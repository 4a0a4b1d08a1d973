"""The stream job against the stack's real Kafka and Postgres, with Spark in local mode.

Each test has its own source, topic, lake folder and checkpoint, so tests share the stack, the
Spark session and raw.api_events without seeing each other's rows.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.jobs.spark.stream import StreamJobConfig, StreamSummary, run_until_caught_up
from restlake.stack.manager import StackEndpoints

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SCHEMA = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
}
REQUEST = RequestInfo(url="http://127.0.0.1:1/items?page=1", status=200, etag='W/"e1"')


class Job:
    """One source's topic, lake folders and checkpoint, and ways to feed and inspect them."""

    def __init__(self, stack: StackEndpoints, root: Path, **overrides: Any) -> None:
        self.stack = stack
        self.source = f"it-{uuid.uuid4().hex[:10]}"
        self.topic = f"restlake.{self.source}"
        self.root = root
        admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
        for future in admin.create_topics(
            [NewTopic(self.topic, num_partitions=3, replication_factor=1)]
        ).values():
            future.result(timeout=30)
        self.producer = Producer(
            {"bootstrap.servers": stack.kafka_bootstrap, "acks": "all", "enable.idempotence": True}
        )
        self.config = self.config_for("ckpt", **overrides)

    def config_for(self, checkpoint: str, **overrides: Any) -> StreamJobConfig:
        return StreamJobConfig(
            source=self.source,
            topic=self.topic,
            kafka_bootstrap=self.stack.kafka_bootstrap,
            bronze_path=str(self.root / "bronze"),
            quarantine_path=str(self.root / "quarantine"),
            checkpoint_path=str(self.root / checkpoint),
            pg_dsn=self.stack.pg_dsn,
            json_schema=SCHEMA,
            **overrides,
        )

    def envelope(self, ext_id: int, *, name: str, minute: int = 0, **changes: Any) -> Envelope:
        env = Envelope.wrap(
            source=self.source,
            payload={"id": ext_id, "name": name},
            external_id=str(ext_id),
            version=(T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
            request=REQUEST,
            fetched_at=T0 + timedelta(minutes=minute, seconds=1),
        )
        return env.model_copy(update=changes) if changes else env

    def send(self, *messages: Envelope | tuple[bytes | None, bytes | None]) -> None:
        for message in messages:
            if isinstance(message, Envelope):
                self.producer.produce(self.topic, key=message.kafka_key(), value=message.kafka_value())
            else:
                self.producer.produce(self.topic, key=message[0], value=message[1])
        assert self.producer.flush(30) == 0

    def run(self, spark: SparkSession, config: StreamJobConfig | None = None) -> StreamSummary:
        return run_until_caught_up(spark, config or self.config)

    def bronze(self, spark: SparkSession) -> list[Any]:
        return (
            spark.read.format("delta")
            .load(self.config.bronze_path)
            .where(f"source = '{self.source}'")
            .collect()
        )

    def quarantine(self, spark: SparkSession) -> list[Any]:
        path = self.config.quarantine_path
        return spark.read.format("delta").load(path).where(f"source = '{self.source}'").collect()

    def postgres(self) -> dict[str, tuple[str, str, dict[str, Any]]]:
        with psycopg.connect(self.stack.pg_dsn) as conn:
            rows = conn.execute(
                "SELECT external_id, version, content_hash, payload FROM raw.api_events WHERE source = %s",
                (self.source,),
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def ledger(self) -> list[tuple[str, int, int, int]]:
        with psycopg.connect(self.stack.pg_dsn) as conn:
            return conn.execute(
                "SELECT query_id, batch_id, rows_in, rows_merged FROM raw.ingest_batches WHERE source = %s"
                " ORDER BY query_id, batch_id",
                (self.source,),
            ).fetchall()


def counts(summary: StreamSummary) -> tuple[int, int, int, int, int]:
    return (
        summary.rows_read,
        summary.bronze_written,
        summary.quarantined,
        summary.pg_inserted,
        summary.pg_updated,
    )


def test_records_land_once_poison_is_quarantined_and_reruns_add_nothing(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = Job(stack, tmp_path)
    n = 30
    originals = [job.envelope(i, name=f"item {i}") for i in range(n)]
    item0_v2 = job.envelope(0, name="item 0, renamed", minute=5)
    missing_id = job.envelope(98, name="no id").model_dump(mode="json")
    del missing_id["external_id"]
    poison: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", b"\xff\xfe this is not JSON"),
        (b"k2", json.dumps(missing_id).encode()),
        (b"k3", None),  # a tombstone
    ]
    violates = job.envelope(99, name="x").model_copy(update={"payload": {"id": "99"}})
    foreign = job.envelope(97, name="y", source="someone-else")
    job.send(*originals, *originals[:5], item0_v2, *poison, violates, foreign)

    first = job.run(spark)
    assert first.batches == 1
    # 30 records + 5 exact duplicates + a newer version of item 0 + 5 poison messages
    assert counts(first) == (41, 31, 5, 30, 0)

    bronze = job.bronze(spark)
    assert sorted(r.idempotency_key for r in bronze) == sorted(
        [e.idempotency_key for e in originals] + [item0_v2.idempotency_key]
    )
    by_key = {r.idempotency_key: r for r in bronze}
    assert json.loads(by_key[item0_v2.idempotency_key].payload) == {"id": 0, "name": "item 0, renamed"}
    assert by_key[item0_v2.idempotency_key].version == "2024-05-01T12:05:00Z"
    assert {r.ingest_date for r in bronze} == {datetime.now(UTC).date()}

    quarantine = job.quarantine(spark)
    assert Counter(r.reason for r in quarantine) == Counter(
        {
            "malformed_envelope": 1,
            "missing_field:external_id": 1,
            "empty_value": 1,
            "schema_violation: $: 'name' is a required property": 1,
            "source_mismatch": 1,
        }
    )
    not_json = next(r for r in quarantine if r.reason == "malformed_envelope")
    assert (bytes(not_json.raw_value), not_json.kafka_key, not_json.kafka_topic) == (
        b"\xff\xfe this is not JSON",
        "k1",
        job.topic,
    )
    assert all(r.kafka_offset is not None and r.batch_id == 0 for r in quarantine)

    pg = job.postgres()
    assert set(pg) == {str(i) for i in range(n)}
    assert pg["0"] == ("2024-05-01T12:05:00Z", item0_v2.content_hash, {"id": 0, "name": "item 0, renamed"})
    assert pg["7"] == ("2024-05-01T12:00:00Z", originals[7].content_hash, {"id": 7, "name": "item 7"})

    # Nothing new in the topic: no batch at all.
    again = job.run(spark)
    assert (again.batches, counts(again)) == (0, (0, 0, 0, 0, 0))

    # A refetch of unchanged records (the same idempotency keys, new offsets) adds nothing anywhere.
    job.send(*originals, item0_v2)
    refetch = job.run(spark)
    assert counts(refetch) == (31, 0, 0, 0, 0)
    assert len(job.bronze(spark)) == 31 and len(job.quarantine(spark)) == 5
    assert job.postgres() == pg

    # A genuinely newer version: one more bronze row, one Postgres update; a stale one loses.
    item1_v2 = job.envelope(1, name="item 1, v2", minute=9)
    item2_stale = job.envelope(2, name="item 2, stale", minute=-9)
    job.send(item1_v2, item2_stale)
    update = job.run(spark)
    assert counts(update) == (2, 2, 0, 0, 1)
    pg_after = job.postgres()
    assert pg_after["1"][:2] == ("2024-05-01T12:09:00Z", item1_v2.content_hash)
    assert pg_after["2"] == pg["2"]
    assert len(job.bronze(spark)) == 33


def test_replayed_batch_and_new_checkpoint_add_no_duplicates(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = Job(stack, tmp_path, max_offsets_per_trigger=5)
    records = [job.envelope(i, name=f"item {i}") for i in range(12)]
    job.send(*records, (b"bad", b"{not json"))
    first = job.run(spark)
    assert first.batches >= 3
    assert (first.rows_read, first.bronze_written, first.quarantined, first.merged) == (13, 12, 1, 12)

    bronze_version = DeltaTable.forPath(spark, job.config.bronze_path).history(1).collect()[0].version
    quarantine_version = DeltaTable.forPath(spark, job.config.quarantine_path).history(1).collect()[0].version
    ledger = job.ledger()
    assert len(ledger) == first.batches

    # Forget that the last batch was committed: Spark runs it again with the same id and offsets,
    # as after a crash between the sinks' commits and the checkpoint's.
    commits = Path(job.config.checkpoint_path) / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)  # else the re-commit's rename collides with it
    replay = job.run(spark)
    assert (replay.batches, replay.pg_replayed_batches, replay.bronze_written, replay.merged) == (1, 1, 0, 0)
    assert DeltaTable.forPath(spark, job.config.bronze_path).history(1).collect()[0].version == bronze_version
    assert (
        DeltaTable.forPath(spark, job.config.quarantine_path).history(1).collect()[0].version
        == quarantine_version
    )
    assert job.ledger() == ledger
    assert len(job.bronze(spark)) == 12 and len(job.quarantine(spark)) == 1

    # A new checkpoint is a new query (new txnAppId, new ledger query id) reading from the start:
    # bronze and Postgres still hold each record once.
    pg = job.postgres()
    fresh = job.run(spark, job.config_for("ckpt-2", max_offsets_per_trigger=5))
    assert (fresh.rows_read, fresh.bronze_written, fresh.merged) == (13, 0, 0)
    assert len(job.bronze(spark)) == 12
    assert job.postgres() == pg
    assert len({query_id for query_id, *_ in job.ledger()}) == 2
