"""Bronze, quarantine and the checkpoint on a real S3-compatible server (MinIO), through s3a://."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

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
