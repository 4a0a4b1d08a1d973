"""Poison messages, duplicates under new offsets, stale versions, topic patterns and typed columns."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from restlake.contracts.stream_job import DEFAULT_MAX_MESSAGE_BYTES
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration


def test_poison_is_quarantined_and_never_fails_the_batch(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    # The topic takes 8 MB records, as a misconfigured or generous one would; the job's cap is 1 MiB.
    job = StreamJob(stack, tmp_path, topic_config={"max.message.bytes": str(8 * 1024 * 1024)})
    good = [job.envelope(i, name=f"item {i}", score=i / 2, **{"Is Open": i % 2 == 0}) for i in range(4)]
    huge = job.envelope(50, name="x" * (5 * 1024 * 1024))
    nul_payload = job.envelope(51, name="a\u0000b")
    nul_external = job.envelope(52, name="ok").model_copy(update={"external_id": "52\u0000"})
    backslash_not_nul = job.envelope(53, name="literally \\u0000, not a NUL")
    job.send(
        *good,
        backslash_not_nul,
        (b"p1", b"\x00\x01 not JSON at all"),
        (b"p2", json.dumps({"hello": "world"}).encode()),  # JSON, but not an envelope
        (b"p3", json.dumps({**json.loads(good[0].kafka_value()), "fetched_at": "yesterday"}).encode()),
        huge,
        nul_payload,
        nul_external,
    )
    summary = job.run(spark)
    assert (summary.rows_read, summary.quarantined, summary.bronze_written, summary.merged) == (11, 6, 5, 5)
    quarantine = job.quarantine(spark)
    assert Counter(r.reason for r in quarantine) == Counter(
        {
            "malformed_envelope": 2,
            "missing_field:source": 1,
            "too_large": 1,
            "nul_character": 2,
        }
    )
    too_large = next(r for r in quarantine if r.reason == "too_large")
    assert len(too_large.raw_value) == DEFAULT_MAX_MESSAGE_BYTES
    assert bytes(too_large.raw_value) == huge.kafka_value()[:DEFAULT_MAX_MESSAGE_BYTES]
    pg = job.postgres()
    assert set(pg) == {"0", "1", "2", "3", "53"}
    assert pg["53"][2]["name"] == "literally \\u0000, not a NUL"

    # Typed columns from the schema's scalar properties; arrays stay in the payload only.
    bronze = {r.external_id: r for r in job.bronze(spark)}
    row = bronze["3"]
    assert (row.p_id, row.p_name, row.p_score, row.p_is_open) == (3, "item 3", 1.5, False)
    assert "p_tags" not in row.asDict()


def test_duplicates_under_new_offsets_and_stale_versions(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path)
    v1 = [job.envelope(i, name=f"item {i}", minute=1) for i in range(5)]
    newer = job.envelope(0, name="item 0 v2", minute=10)
    older = job.envelope(1, name="item 1 v0", minute=-10)
    # In one batch: every record twice (distinct offsets), a newer version of 0 and an older one of 1.
    job.send(*v1, *v1, newer, older)
    first = job.run(spark)
    assert (first.rows_read, first.bronze_written, first.pg_inserted, first.pg_updated) == (12, 7, 5, 0)

    # Next batch: the same records again, and the stale version of 0 after the newer one.
    stale = job.envelope(0, name="item 0 v0", minute=0)
    job.send(*v1, newer, stale)
    second = job.run(spark)
    assert (second.rows_read, second.bronze_written, second.merged) == (7, 1, 0)

    pg = job.postgres()
    assert pg["0"][:2] == ("2024-05-01T12:10:00Z", newer.content_hash)
    assert pg["1"][:2] == ("2024-05-01T12:01:00Z", v1[1].content_hash)
    # Bronze keeps every version once: 5 originals, the newer 0, the older 1, the stale 0.
    keys = Counter(r.idempotency_key for r in job.bronze(spark))
    assert set(keys.values()) == {1}
    assert set(keys) == {e.idempotency_key for e in [*v1, newer, older, stale]}


def test_topic_pattern_reads_every_matching_topic(
    stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path)
    other = f"{job.topic}.replay"
    job.create_topic(other, 1)
    config = job.config_for(
        "ckpt-pattern", topic=None, topic_pattern=f"{job.topic}(\\..*)?", max_offsets_per_trigger=2
    )
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(3)])
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(3, 6)], topic=other)
    summary = job.run(spark, config)
    # The cap holds across both topics: not all 6 in one batch. Not >= 3: Spark gives every
    # partition with data at least one offset per batch, and the 4 partitions' shares of the keys
    # vary with the test's random source name.
    assert summary.batches >= 2
    assert (summary.rows_read, summary.bronze_written, summary.merged) == (6, 6, 6)
    assert Counter(r.kafka_topic for r in job.bronze(spark)) == {job.topic: 3, other: 3}
