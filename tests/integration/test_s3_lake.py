"""Bronze, quarantine and the checkpoint on a real S3-compatible server (MinIO), through s3a://."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.stack.manager import StackEndpoints
from restlake.stack.minio import MinioServer

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A MinIO server (built from the Go module proxy on first use, then cached) for this module."""
    server = MinioServer(tmp_path_factory.mktemp("minio"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def use_bucket(spark: SparkSession, minio: MinioServer, bucket: str) -> None:
    """Point s3a at MinIO for ``bucket`` only (per-bucket keys), on the shared session."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    for key, value in minio.s3_settings().hadoop_conf().items():
        hadoop.set(key.replace("fs.s3a.", f"fs.s3a.bucket.{bucket}.", 1), value)


def test_bronze_and_checkpoint_on_s3a(
    minio: MinioServer, stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    minio.create_bucket(bucket)
    use_bucket(spark, minio, bucket)
    job = StreamJob(stack, f"s3a://{bucket}/restlake", max_offsets_per_trigger=4)
    assert job.config.checkpoint_path.startswith("s3a://")

    job.send(*[job.envelope(i, name=f"item {i}") for i in range(8)], (b"bad", b"{nope"))
    first = job.run(spark)
    assert (first.rows_read, first.bronze_written, first.quarantined, first.merged) == (9, 8, 1, 8)

    # A second run resumes from the checkpoint on S3: only the new records are read.
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(8, 10)], job.envelope(0, name="item 0"))
    second = job.run(spark)
    assert (second.rows_read, second.bronze_written, second.merged) == (3, 2, 2)

    assert sorted(int(r.external_id) for r in job.bronze(spark)) == list(range(10))
    assert [r.reason for r in job.quarantine(spark)] == ["malformed_envelope"]
    assert set(job.postgres()) == {str(i) for i in range(10)}
    # The objects really are in MinIO's data folder, not in some local fallback.
    assert (minio.data_dir / bucket / "restlake" / "bronze" / "_delta_log").is_dir()


def test_status_reads_the_checkpoint_and_delta_logs_on_s3(
    minio: MinioServer, stack: StackEndpoints, spark: SparkSession
) -> None:
    """`restlake status` on an s3a:// lake: committed offsets from the stream checkpoint, bronze and
    quarantine counts from their Delta logs (a Parquet checkpoint and JSON commits), read from MinIO
    without Spark, exact in every field."""
    bucket = f"status-{uuid.uuid4().hex[:8]}"
    minio.create_bucket(bucket)
    use_bucket(spark, minio, bucket)
    root = f"s3a://{bucket}/restlake"
    job = StreamJob(stack, root)
    # The layout status derives from a source's name (Target.of_name).
    job.config = job.config_for(
        f"_checkpoints/{job.source}",
        bronze_path=f"{root}/bronze/{job.source}",
        quarantine_path=f"{root}/quarantine/{job.source}",
    )
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(8)], (b"bad", b"{nope"))
    first = job.run(spark)
    assert (first.bronze_written, first.quarantined) == (8, 1)
    # A Parquet checkpoint every second commit from here: the ALTER and the next append make two,
    # so status must start from a checkpoint it reads from S3 with pyarrow.
    spark.sql(
        f"ALTER TABLE delta.`{job.config.bronze_path}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')"
    )
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(8, 11)])
    assert job.run(spark).bronze_written == 3
    version = (
        spark.sql(f"DESCRIBE HISTORY delta.`{job.config.bronze_path}`").agg({"version": "max"}).first()[0]
    )
    delta_log = minio.data_dir / bucket / "restlake" / "bronze" / job.source / "_delta_log"
    assert any(p.name.endswith(".checkpoint.parquet") for p in delta_log.iterdir())
    with psycopg.connect(stack.pg_dsn) as conn:
        last_batch_id, last_batch_at = conn.execute(
            "SELECT batch_id, committed_at FROM raw.ingest_batches WHERE source = %s "
            "ORDER BY committed_at DESC, batch_id DESC LIMIT 1",
            (job.source,),
        ).fetchone()

    env = {
        "RESTLAKE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "RESTLAKE_PG_DSN": stack.pg_dsn,
        "RESTLAKE_LAKE_ROOT": root,
        "RESTLAKE_S3_ENDPOINT": minio.endpoint,
    }
    result = CliRunner().invoke(app, ["status", "--json", job.source], env=env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["sources"]
    assert row == {
        "source": job.source,
        # Never fetched (records were produced by the test): no fetch state.
        "last_fetch_at": None,
        "last_fetch_outcome": None,
        "last_fetch_error": None,
        "last_complete_fetch_at": None,
        "requests": None,
        "not_modified": None,
        "not_modified_share": None,
        "watermark": None,
        "watermark_age_seconds": None,
        "kafka_end_offset": 12,
        "kafka_committed_offset": 12,
        "kafka_lag": 0,
        "last_batch_id": last_batch_id,
        "last_batch_at": last_batch_at.isoformat(),
        "postgres_rows": 11,
        "bronze_version": version,
        "bronze_rows": 11,
        "quarantined": 1,
        "dead_letters": 0,
        "stale": None,
        "unavailable": {},
    }

    # Wrong keys: the lake's fields say why, the rest are still read.
    env["RESTLAKE_S3_SECRET_KEY"] = "not-the-key"
    result = CliRunner().invoke(app, ["status", "--json", job.source], env=env)
    (row,) = json.loads(result.stdout)["sources"]
    assert sorted(row["unavailable"]) == [
        "bronze_rows",
        "bronze_version",
        "kafka_committed_offset",
        "kafka_lag",  # the lag needs the committed offset
        "quarantined",
    ]
    assert row["unavailable"]["bronze_rows"].startswith(f"bronze table {root}/bronze/{job.source}: ")
    assert "not-the-key" not in result.stdout
    assert (row["kafka_end_offset"], row["postgres_rows"]) == (12, 11)
