"""The backfill replays a Kafka range into Postgres through merge_batch: exact counts, a no-op replay,
offset and time ranges, the stream's validation and key dedupe, one ledger query id per run."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from pyspark.sql import SparkSession

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.contracts.stream_job import StreamJobConfig
from restlake.errors import ConfigError
from restlake.jobs.spark.backfill import KafkaRange, run_backfill
from restlake.kafka_logging import client_config
from restlake.postgres import migrations
from restlake.stack.manager import StackEndpoints

pytestmark = pytest.mark.integration
LOG = logging.getLogger("tests.kafka")  # librdkafka lines through logging, not fd 2
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SCHEMA = {"type": "object", "required": ["id", "name"], "properties": {"id": {"type": "integer"}}}
REQUEST = RequestInfo(url="http://127.0.0.1:1/items?page=1", status=200)


def envelope(source: str, ext_id: int, name: str, minute: int = 0) -> Envelope:
    return Envelope.wrap(
        source=source,
        payload={"id": ext_id, "name": name},
        external_id=str(ext_id),
        version=(T0 + timedelta(minutes=minute)).isoformat(),
        request=REQUEST,
        fetched_at=T0 + timedelta(minutes=minute, seconds=1),
    )


def rows(dsn: str, source: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT external_id, payload->>'name', version, updated_at FROM raw.api_events WHERE source = %s",
            (source,),
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in found}


def ledger_ids(dsn: str, source: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT query_id, count(*) FROM raw.ingest_batches WHERE source = %s GROUP BY query_id",
            (source,),
        ).fetchall()
    return {r[0]: r[1] for r in found}


def new_source(stack: StackEndpoints, *, partitions: int) -> tuple[str, str, AdminClient]:
    """A new source name and its topic of ``partitions`` partitions, the ledgers migrated."""
    migrations.apply(stack.pg_dsn)
    source = f"bf-{uuid.uuid4().hex[:10]}"
    topic = f"restlake.{source}"
    admin = AdminClient(client_config({"bootstrap.servers": stack.kafka_bootstrap}, LOG))
    for future in admin.create_topics([NewTopic(topic, partitions, replication_factor=1)]).values():
        future.result(timeout=30)
    return source, topic, admin


def new_producer(stack: StackEndpoints) -> Producer:
    return Producer(
        client_config(
            {"bootstrap.servers": stack.kafka_bootstrap, "acks": "all", "enable.idempotence": True}, LOG
        )
    )


def backfill_config(stack: StackEndpoints, source: str, tmp_path: Path) -> StreamJobConfig:
    return StreamJobConfig(
        source=source,
        topic=f"restlake.{source}",
        kafka_bootstrap=stack.kafka_bootstrap,
        bronze_path=str(tmp_path / "bronze"),
        quarantine_path=str(tmp_path / "quarantine"),
        checkpoint_path=str(tmp_path / "ckpt"),
        pg_dsn=stack.pg_dsn,
        json_schema=SCHEMA,
    )


def test_backfill_by_offsets_then_noop_replay_then_by_time(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    source, topic, _ = new_source(stack, partitions=2)
    producer = new_producer(stack)

    def send(partition: int, key: bytes, value: bytes) -> None:
        producer.produce(topic, key=key, value=value, partition=partition)
        assert producer.flush(30) == 0

    first = [envelope(source, i, f"n{i}") for i in range(1, 6)]
    for i, env in enumerate(first):  # ids 1-3 on partition 0 (offsets 0-2), 4-5 on partition 1 (0-1)
        send(0 if i < 3 else 1, env.kafka_key(), env.kafka_value())
    send(1, b"poison", b"not json")  # partition 1, offset 2: quarantined by validation
    send(1, first[0].kafka_key(), first[0].kafka_value())  # offset 3: the same key again

    cfg = backfill_config(stack, source, tmp_path)
    everything = KafkaRange(from_offsets={0: 0, 1: 0})
    progress: list[tuple[int, int]] = []
    one = run_backfill(
        spark, cfg, everything, run_id="one", chunk_rows=2, progress=lambda d, t: progress.append((d, t))
    )
    assert (one.rows_read, one.rows_invalid, one.rows_duplicate, one.rows_merged_in) == (7, 1, 1, 5)
    assert (one.inserted, one.updated, one.unchanged) == (5, 0, 0)
    # Chunks are buckets of external_ids packed up to 2 rows: at least 3 for 5 rows, none larger.
    done = [d for d, _ in progress]
    steps = [b - a for a, b in zip([0, *done], done, strict=False)]
    assert one.chunks == len(progress) >= 3 and all(1 <= s <= 2 for s in steps)
    assert done[-1] == 5 and {t for _, t in progress} == {5}
    loaded = rows(stack.pg_dsn, source)
    assert sorted(loaded) == ["1", "2", "3", "4", "5"]

    two = run_backfill(spark, cfg, everything, run_id="two")
    assert (two.rows_read, two.inserted, two.updated, two.unchanged, two.chunks) == (7, 0, 0, 5, 1)
    assert rows(stack.pg_dsn, source) == loaded  # not even updated_at moved
    assert ledger_ids(stack.pg_dsn, source) == {"backfill-one": one.chunks, "backfill-two": 1}
    # The same run id again resumes: every chunk is in the ledger, nothing is merged twice.
    again = run_backfill(spark, cfg, everything, run_id="one", chunk_rows=2)
    assert (again.rows_merged_in, again.inserted, again.updated, again.unchanged) == (5, 0, 0, 0)
    # Resuming it with other chunks would skip rows the ledger never saw: refused, naming the cause.
    with pytest.raises(ConfigError, match="--chunk-rows changed"):
        run_backfill(spark, cfg, everything, run_id="one", chunk_rows=5)

    # The topic grows (a live source); run "one" ended at "latest", which its first start pinned to
    # the end offsets it saw: resumed (a retried Backfill Job pod), it reads the same 7 records in
    # the same chunks, where the moving end used to be refused as a changed range.
    later = envelope(source, 6, "n6")
    send(0, later.kafka_key(), later.kafka_value())
    resumed = run_backfill(spark, cfg, everything, run_id="one", chunk_rows=2)
    assert (resumed.rows_read, resumed.rows_merged_in, resumed.inserted, resumed.chunks) == (
        7,
        5,
        0,
        one.chunks,
    )
    assert resumed.range["to_offsets"] == {"0": 3, "1": 4}
    with psycopg.connect(stack.pg_dsn) as conn:
        pins = conn.execute(
            "SELECT query_id, pinned FROM raw.backfill_ranges WHERE source = %s ORDER BY query_id", (source,)
        ).fetchall()
    assert pins == [
        ("backfill-one", {"topic": topic, "to_offsets": {"0": 3, "1": 4}}),
        ("backfill-two", {"topic": topic, "to_offsets": {"0": 3, "1": 4}}),
    ]
    # A new run sees the topic as it is now.
    grown = run_backfill(spark, cfg, everything, run_id="four")
    assert (grown.rows_read, grown.inserted, grown.unchanged) == (8, 1, 5)
    assert grown.range["to_offsets"] == {"0": 4, "1": 4}

    # An offset window: partition 0 offset 1 only (id 2), partition 1 empty (start = end = 0).
    window = run_backfill(spark, cfg, KafkaRange(from_offsets={0: 1, 1: 0}, to_offsets={0: 2, 1: 0}))
    assert (window.rows_read, window.rows_merged_in, window.unchanged) == (1, 1, 1)

    # By time: only what arrived after the cut, here a newer version of id 2.
    time.sleep(1.0)  # Kafka timestamps are milliseconds; keep the cut clear of the first sends
    cut = datetime.now(UTC)
    newer = envelope(source, 2, "n2-renamed", minute=5)
    send(0, newer.kafka_key(), newer.kafka_value())
    by_time = run_backfill(spark, cfg, KafkaRange(from_time=cut), run_id="three")
    assert (by_time.rows_read, by_time.inserted, by_time.updated) == (1, 0, 1)
    assert rows(stack.pg_dsn, source)["2"][0] == "n2-renamed"


def test_a_resumed_run_reads_nothing_of_a_partition_added_since_its_pin(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    """A run open at the end pins each partition's end at its first start. A partition added to the
    topic later held nothing then: the resumed run (a retried Job pod) must read the range its first
    start saw, not the new partition up to "latest"; a new run reads it."""
    source, topic, admin = new_source(stack, partitions=1)

    def send(partition: int, env: Envelope) -> None:
        # A producer per send: one made before the partition was added does not know it.
        producer = new_producer(stack)
        producer.produce(topic, key=env.kafka_key(), value=env.kafka_value(), partition=partition)
        assert producer.flush(30) == 0

    for i in range(1, 4):
        send(0, envelope(source, i, f"n{i}"))
    cfg = backfill_config(stack, source, tmp_path)
    everything = KafkaRange(from_offsets={0: 0})
    first = run_backfill(spark, cfg, everything, run_id="one")
    assert (first.rows_read, first.inserted) == (3, 3)

    for future in admin.create_partitions([NewPartitions(topic, 2)]).values():
        future.result(timeout=30)
    send(1, envelope(source, 7, "n7"))
    send(0, envelope(source, 8, "n8"))

    resumed = run_backfill(spark, cfg, everything, run_id="one")
    assert (resumed.rows_read, resumed.inserted, resumed.updated) == (3, 0, 0)
    assert resumed.range["to_offsets"] == {"0": 3, "1": 0}
    assert sorted(rows(stack.pg_dsn, source)) == ["1", "2", "3"]

    later = run_backfill(spark, cfg, everything, run_id="two")
    assert (later.rows_read, later.inserted, later.unchanged) == (5, 2, 3)
    assert sorted(rows(stack.pg_dsn, source)) == ["1", "2", "3", "7", "8"]
