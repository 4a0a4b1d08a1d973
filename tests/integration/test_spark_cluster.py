"""The same stream job in client mode against a standalone master and worker started from pyspark."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from restlake.stack.manager import StackEndpoints
from restlake.stack.spark_cluster import SparkCluster

from .fixtures_stream import StreamJob, tail

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    # Two one-core workers, as the chart deploys: the driver must spread over both.
    cluster = SparkCluster(
        tmp_path_factory.mktemp("spark-cluster"), worker_cores=1, worker_memory="1g", workers=2
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_stream_job_runs_on_a_standalone_cluster(
    spark_cluster: SparkCluster,
    stack: StackEndpoints,
    spark: SparkSession,
    spark_jars: list[Path],
    tmp_path: Path,
) -> None:
    job = StreamJob(stack, tmp_path, available_now=True, max_offsets_per_trigger=6)
    n = 10
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(n)], (b"bad", b"not json"))
    log_file = tmp_path / "driver.log"
    proc = job.start_process(
        job.write_config(tmp_path / "job.json"),
        spark_jars,
        log_file=log_file,
        args=[
            "--master",
            spark_cluster.master_url,
            "--conf",
            "spark.executor.memory=512m",
            "--conf",
            "spark.cores.max=2",
        ],
    )
    try:
        assert proc.wait(timeout=600) == 0, tail(log_file)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_file.read_text(encoding="utf-8", errors="replace")
    assert f"master={spark_cluster.master_url}" in text
    assert len(job.bronze(spark)) == n
    assert [r.reason for r in job.quarantine(spark)] == ["malformed_envelope"]
    assert set(job.postgres()) == {str(i) for i in range(n)}
    assert sum(rows_in for *_, rows_in, _ in job.ledger()) == n
    # Executors ran on the workers, one on each (spark.cores.max=2 over two one-core workers), not
    # inside the driver.
    assert spark_cluster.alive_workers() == 2
    apps = list((spark_cluster.home / "work").glob("app-*/*/stderr"))
    assert len(apps) == 2, apps
