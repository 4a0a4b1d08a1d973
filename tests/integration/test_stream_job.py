"""The stream job against the stack's real Kafka and Postgres, with Spark in local mode.

Each test has its own source, topic, lake folder and checkpoint, so tests share the stack, the
Spark session and raw.api_events without seeing each other's rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.errors import TransientError
from restlake.jobs.spark.batch import checkpoint_query_id
from restlake.jobs.spark.bronze_keys import table_state
from restlake.jobs.spark.stream import StreamSummary
from restlake.postgres import bronze_keys as ledger
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


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
    job = StreamJob(stack, tmp_path)
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
    foreign = job.envelope(97, name="y").model_copy(update={"source": "someone-else"})
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
    # jsonschema decides this one in a second pass over the batch: its raw value must survive that.
    violation = next(r for r in quarantine if r.reason.startswith("schema_violation"))
    assert json.loads(bytes(violation.raw_value))["payload"] == {"id": "99"}

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
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=5)
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


def test_a_ledger_that_lost_its_keys_or_holds_a_dead_querys_claims_neither_loses_nor_doubles(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=5)
    first = [job.envelope(i, name=f"item {i}") for i in range(6)]
    job.send(*first)
    assert job.run(spark).bronze_written == 6

    # As after an upgrade from a version without the key ledger: bronze holds rows it does not know.
    table = table_state(spark, job.config.bronze_path).id
    second = [job.envelope(i, name=f"item {i}") for i in range(6, 12)]
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM raw.bronze_keys WHERE table_id = %s::uuid", (table,))
        conn.execute("DELETE FROM raw.bronze_key_sources WHERE table_id = %s::uuid", (table,))
        # And a query that claimed the next records' keys, then died before appending them.
        digests = [hashlib.md5(e.idempotency_key.encode()).hexdigest() for e in second]
        ledger.claim(conn, table_id=table, query_id="dead-query", batch_id=0, keys=digests)
    job.send(*second)

    # A new checkpoint reads all 12: the 6 in bronze are found by seeding the ledger from the table,
    # the 6 claimed by the dead query are looked up in bronze, found missing, and written once.
    fresh = job.run(spark, job.config_for("ckpt-2", max_offsets_per_trigger=5))
    assert (fresh.rows_read, fresh.bronze_written) == (12, 6)
    keys = Counter(r.idempotency_key for r in job.bronze(spark))
    assert len(keys) == 12 and set(keys.values()) == {1}
    assert keys.keys() == {e.idempotency_key for e in [*first, *second]}
    assert len(job.postgres()) == 12


def test_jsonschema_runs_only_for_batches_the_compiled_check_doubts(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    from prometheus_client import REGISTRY

    compiled = {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    }
    job = StreamJob(stack, tmp_path, json_schema=compiled)

    def fallback_rows() -> float:
        sample = REGISTRY.get_sample_value(
            "restlake_stream_schema_fallback_rows_total", {"source": job.source}
        )
        return sample or 0.0

    plain = [job.envelope(i, name=f"item {i}") for i in range(8)]
    job.send(*plain)
    assert counts(job.run(spark)) == (8, 8, 0, 8, 0)
    assert fallback_rows() == 0

    # 1e300 is an integer to jsonschema but a DOUBLE to Spark: doubtful, then accepted by jsonschema.
    # The record without a name is doubtful too, and jsonschema says why it is invalid.
    doubtful_valid = job.envelope(20, name="big").model_copy(update={"payload": {"id": 1e300, "name": "big"}})
    invalid = job.envelope(21, name="x").model_copy(update={"payload": {"id": 21}})
    more = [job.envelope(i, name=f"item {i}") for i in range(8, 12)]
    job.send(*more, doubtful_valid, invalid)
    assert counts(job.run(spark)) == (6, 5, 1, 5, 0)
    assert fallback_rows() == 2

    (violation,) = job.quarantine(spark)
    assert violation.reason == "schema_violation: $: 'name' is a required property"
    assert json.loads(bytes(violation.raw_value))["external_id"] == "21"
    assert set(job.postgres()) == {str(i) for i in range(12)} | {"20"}
    assert len(job.bronze(spark)) == 13


def test_the_query_id_is_read_from_the_checkpoint_without_a_job(spark: SparkSession, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": "5f0c6c1e-query"}) + "\n")
    jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup())
    assert checkpoint_query_id(spark, f"file://{checkpoint}/") == "5f0c6c1e-query"
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup()) == jobs_before

    (checkpoint / "metadata").write_text("")
    with pytest.raises(TransientError, match="is empty"):
        checkpoint_query_id(spark, str(checkpoint))
