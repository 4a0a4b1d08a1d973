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
from pyspark.sql import SparkSession

from restlake.jobs.spark.faults import KILL_AFTER_BRONZE_ENV
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


def test_sigkill_between_bronze_write_and_postgres_commit(
    stack: StackEndpoints, spark: SparkSession, spark_jars: list[Path], tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=4, available_now=True)
    n = 10
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(n)])
    config_file = job.write_config(tmp_path / "job.json")
    log_file = tmp_path / "driver.log"

    proc = job.start_process(config_file, spark_jars, log_file=log_file, env={KILL_AFTER_BRONZE_ENV: "1"})
    returncode = proc.wait(timeout=300)
    assert returncode == -signal.SIGKILL, tail(log_file)

    # The crash left batch 1 in bronze but neither in Postgres nor in the checkpoint's commits.
    assert [b for _, b, *_ in job.ledger()] == [0]
    assert len(job.bronze(spark)) == 8
    assert len(job.postgres()) == 4
    assert not (Path(job.config.checkpoint_path) / "commits" / "1").exists()

    # Restart without the hook (in this process, same checkpoint): Spark replays batch 1 with the
    # same offsets; its bronze append is a no-op, its merge commits; batch 2 follows.
    summary = job.run(spark)
    assert (summary.batches, summary.rows_read, summary.bronze_written, summary.merged) == (2, 6, 2, 6)
    assert [(b, rows_in) for _, b, rows_in, _ in job.ledger()] == [(0, 4), (1, 4), (2, 2)]
    assert_exactly_once(job, spark, n)


def test_postgres_restart_mid_run_is_retried(
    stack: StackEndpoints,
    tmp_path: Path,
    spark: SparkSession,
    local_stack: LocalStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=3)
    n = 15
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(n)])
    restarted = threading.Event()
    errors: list[BaseException] = []

    def restart_postgres() -> None:
        try:
            wait_for(lambda: len(job.ledger()) >= 1, 240, "the first merged batch")
            local_stack.stop_service("postgres")
            time.sleep(2)
            local_stack.start_service("postgres")
            restarted.set()
        except BaseException as exc:
            errors.append(exc)

    fault = threading.Thread(target=restart_postgres, daemon=True)
    fault.start()
    with caplog.at_level(logging.WARNING, logger="restlake.jobs.spark.batch"):
        summary = job.run(spark)
    fault.join(timeout=120)
    assert not errors and restarted.is_set()
    assert summary.rows_read == n
    assert any("retrying" in r.getMessage() for r in caplog.records), "the restart hit no merge"
    assert len(job.ledger()) == summary.batches
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
