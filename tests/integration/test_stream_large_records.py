"""Records of several KB (real APIs have them) through a driver with a small heap: nothing lost.

A micro-batch is capped in records, not bytes. Before the stream job bounded what one task and
the Postgres collect hold, 60,000 records of 7 KB killed a 2 GiB driver with an OutOfMemoryError;
here 30,000 records of ~8 KB, one micro-batch of ~240 MB, go through a 640 MiB heap.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pyspark.sql import SparkSession

from restlake.jobs.spark.sinks import COLLECT_SLICE_BYTES
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob, tail

pytestmark = pytest.mark.integration

RECORDS = 30_000
TEXT = "lorem ipsum dolor sit amet " * 300  # ~8 KB


def test_a_batch_of_large_records_lands_whole_through_a_small_heap(
    stack: StackEndpoints, spark: SparkSession, spark_jars: list[Path], tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, partitions=2, available_now=True, json_schema=None)
    batch = [job.envelope(i, name=f"item {i}", text=f"{i} {TEXT}") for i in range(RECORDS)]
    assert RECORDS * len(TEXT) > COLLECT_SLICE_BYTES  # so the Postgres sink must slice it
    job.send(*batch)
    config_file = job.write_config(tmp_path / "job.json")
    log_file = tmp_path / "driver.log"
    proc = job.start_process(
        config_file, spark_jars, log_file=log_file, env={"RESTLAKE_SPARK_DRIVER_MEMORY": "640m"}
    )
    assert proc.wait(timeout=600) == 0, tail(log_file)

    assert [(b, rows_in, merged) for _, b, rows_in, merged in job.ledger()] == [(0, RECORDS, RECORDS)]
    with psycopg.connect(stack.pg_dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT external_id), sum(length(payload->>'text'))"
            " FROM raw.api_events WHERE source = %s",
            (job.source,),
        ).fetchone()
    assert row is not None
    assert row[0] == row[1] == RECORDS
    assert row[2] == sum(len(f"{i} {TEXT}") for i in range(RECORDS))
    bronze = spark.read.format("delta").load(job.config.bronze_path).where(f"source = '{job.source}'")
    assert bronze.count() == RECORDS
    assert bronze.select("idempotency_key").distinct().count() == RECORDS
