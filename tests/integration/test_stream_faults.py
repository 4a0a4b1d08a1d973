"""Faults against the real stack: a driver SIGKILLed mid-batch, Postgres and the broker restarted.

Each test asserts exact outcomes in Postgres, the ledger and bronze: nothing lost, nothing doubled.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.jobs.spark import faults
from restlake.jobs.spark.faults import (
    KILL_AFTER_BRONZE_CLAIM_ENV,
    KILL_AFTER_BRONZE_ENV,
    KILL_BEFORE_BRONZE_CONFIRM_ENV,
)
from restlake.jobs.spark.stream import run_stream
from restlake.stack.manager import LocalStack, StackEndpoints

from .fixtures_stream import StreamJob, tail, wait_for

pytestmark = pytest.mark.integration


def assert_exactly_once(job: StreamJob, spark: SparkSession, n: int) -> None:
    """Bronze holds each of the n records once, Postgres each once, the ledger each batch once."""
    bronze = job.bronze(spark)
    assert len(bronze) == n
    assert len({r.idempotency_key for r in bronze}) == n
    pg = job.postgres()
    assert set(pg) == {str(i) for i in range(n)}
    assert all(payload == {"id": int(k), "name": f"item {k}"} for k, (_, _, payload) in pg.items())
    ledger = job.ledger()
    assert len({(q, b) for q, b, *_ in ledger}) == len(ledger)
    assert sum(rows_in for *_, rows_in, _ in ledger) == n
    assert sum(merged for *_, merged in ledger) == n


def killed_in_batch_1(
    stack: StackEndpoints, spark_jars: list[Path], tmp_path: Path, fault_env: str, n: int
) -> StreamJob:
    """n records on the topic, then a driver subprocess that SIGKILLs itself at ``fault_env`` in batch 1."""
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=4, available_now=True)
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(n)])
    config_file = job.write_config(tmp_path / "job.json")
    log_file = tmp_path / "driver.log"
    proc = job.start_process(config_file, spark_jars, log_file=log_file, env={fault_env: "1"})
    assert proc.wait(timeout=300) == -signal.SIGKILL, tail(log_file)
    return job


def test_sigkill_between_bronze_write_and_postgres_commit(
    stack: StackEndpoints, spark: SparkSession, spark_jars: list[Path], tmp_path: Path
) -> None:
    n = 10
    job = killed_in_batch_1(stack, spark_jars, tmp_path, KILL_AFTER_BRONZE_ENV, n)

    # The crash left batch 1 in bronze but neither in Postgres nor in the checkpoint's commits.
    # (maxOffsetsPerTrigger splits 4 across 3 partitions, so a batch holds about 4, not exactly.)
    ledger = job.ledger()
    assert [b for _, b, *_ in ledger] == [0]
    in_batch = Counter(r.batch_id for r in job.bronze(spark))
    assert set(in_batch) == {0, 1} and in_batch[0] == ledger[0][2]
    assert len(job.postgres()) == in_batch[0]
    assert not (Path(job.config.checkpoint_path) / "commits" / "1").exists()

    # Restart without the hook (in this process, same checkpoint): Spark replays batch 1 with the
    # same offsets; its bronze append is a no-op, its merge commits; the rest follows.
    summary = job.run(spark)
    rest = n - in_batch[0]
    assert (summary.rows_read, summary.merged) == (rest, rest)
    assert summary.bronze_written == rest - in_batch[1]
    ledger = job.ledger()
    assert [b for _, b, *_ in ledger] == list(range(summary.batches + 1))
    assert ledger[1][2] == in_batch[1]
    assert Counter(r.batch_id for r in job.bronze(spark))[1] == in_batch[1]
    assert_exactly_once(job, spark, n)
    # A few appends of a restarted driver leave the files as written: Delta's auto compaction,
    # on then, rewrote the partition after each of them (its per-process counts restart wrong).
    history = DeltaTable.forPath(spark, job.config.bronze_path).history().select("operation").collect()
    assert "OPTIMIZE" not in {r[0] for r in history}


def test_sigkill_between_bronze_commit_and_its_confirmation(
    stack: StackEndpoints,
    spark: SparkSession,
    spark_jars: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The append carries no txnAppId: only bronze knows that batch 1 committed, and the replay asks it."""
    n = 10
    job = killed_in_batch_1(stack, spark_jars, tmp_path, KILL_BEFORE_BRONZE_CONFIRM_ENV, n)
    in_batch = Counter(r.batch_id for r in job.bronze(spark))
    assert set(in_batch) == {0, 1}, "batch 1's Delta commit should precede the kill"
    assert [b for _, b, *_ in job.ledger()] == [0]

    with caplog.at_level(logging.WARNING, logger="restlake.jobs.spark.bronze_keys"):
        summary = job.run(spark)
    rest = n - in_batch[0]
    assert (summary.rows_read, summary.merged) == (rest, rest)
    # Batch 1's replay found its rows in bronze and appended none of them again.
    assert summary.bronze_written == rest - in_batch[1]
    replays = [r.getMessage() for r in caplog.records if "unconfirmed bronze batch" in r.getMessage()]
    assert replays == [
        f"replay of an unconfirmed bronze batch source={job.config.source} batch_id=1 "
        f"claimed_before={in_batch[1]} already_in_bronze={in_batch[1]} answered_by=commit_tags"
    ]
    assert Counter(r.batch_id for r in job.bronze(spark))[1] == in_batch[1]
    assert_exactly_once(job, spark, n)


def test_sigkill_between_bronze_claim_and_append(
    stack: StackEndpoints,
    spark: SparkSession,
    spark_jars: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ledger holds batch 1's keys, bronze none of them: the replay must append every one."""
    n = 10
    job = killed_in_batch_1(stack, spark_jars, tmp_path, KILL_AFTER_BRONZE_CLAIM_ENV, n)
    in_batch = Counter(r.batch_id for r in job.bronze(spark))
    assert set(in_batch) == {0}, "batch 1 was killed before its append"
    claimed = job.claimed_keys(spark, batch_id=1)
    assert claimed > 0

    with caplog.at_level(logging.WARNING, logger="restlake.jobs.spark.bronze_keys"):
        summary = job.run(spark)
    rest = n - in_batch[0]
    assert (summary.rows_read, summary.merged, summary.bronze_written) == (rest, rest, rest)
    replays = [r.getMessage() for r in caplog.records if "unconfirmed bronze batch" in r.getMessage()]
    # The log's tags said batch 0's append is the newest of this query: batch 1's never landed.
    assert replays == [
        f"replay of an unconfirmed bronze batch source={job.config.source} batch_id=1 "
        f"claimed_before={claimed} already_in_bronze=0 answered_by=commit_tags"
    ]
    assert_exactly_once(job, spark, n)


def test_postgres_restart_mid_run_is_retried(
    stack: StackEndpoints,
    tmp_path: Path,
    spark: SparkSession,
    local_stack: LocalStack,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=3)
    n = 9
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(n)])
    restarted = threading.Event()
    errors: list[BaseException] = []

    def start_again() -> None:
        try:
            time.sleep(3)
            local_stack.start_service("postgres")
            restarted.set()
        except BaseException as exc:
            errors.append(exc)

    def stop_postgres_before_merge(batch_id: int) -> None:
        # Batch 1 finds Postgres down right when it merges (a restart between two merges would
        # go unseen: merges connect per batch); it comes back 3 s later, within the retries.
        if batch_id == 1:
            local_stack.stop_service("postgres")
            threading.Thread(target=start_again, daemon=True).start()

    monkeypatch.setattr(faults, "after_bronze_write", stop_postgres_before_merge)
    with caplog.at_level(logging.WARNING, logger="restlake.jobs.spark.batch"):
        summary = job.run(spark)
    assert restarted.wait(60) and not errors
    assert summary.rows_read == n and summary.batches >= 3
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retried and all("batch_id=1 " in m for m in retried)
    assert [b for _, b, *_ in job.ledger()] == list(range(summary.batches))
    assert_exactly_once(job, spark, n)


def test_broker_restart_mid_run_recovers_in_place(
    spark: SparkSession, local_stack: LocalStack, stack: StackEndpoints, tmp_path: Path
) -> None:
    """The running query rides out a broker restart: no failure, no restart, exact counts."""
    job = StreamJob(stack, tmp_path, processing_time="1 second")
    first = [job.envelope(i, name=f"item {i}") for i in range(6)]
    second = [job.envelope(i, name=f"item {i}") for i in range(6, 12)]
    job.send(*first)
    query = run_stream(spark, job.config)
    try:
        wait_for(lambda: len(job.postgres()) == 6, 240, "the first 6 records in Postgres")
        local_stack.stop_service("kafka")
        time.sleep(2)
        local_stack.start_service("kafka")
        job.send(*second)
        wait_for(lambda: len(job.postgres()) == 12 or not query.isActive, 240, "the next 6 records")
        assert query.isActive, f"query failed on the broker restart: {query.exception()}"
    finally:
        query.stop()
    assert_exactly_once(job, spark, 12)
    assert Counter(r.kafka_topic for r in job.bronze(spark)) == {job.topic: 12}
